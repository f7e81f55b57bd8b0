"""The default exclusion rule, shared by `fastpenalty.torch.Penalty` and `python -m fastpenalty
profile`: which parameters a penalty leaves out unless told otherwise."""

from __future__ import annotations

import re

# A name component that is a normalization layer: LayerNorm, layernorm, input_layernorm, norm,
# rms_norm, ln_1, ln_f, bn1, bn3, gn ...
_NORM_COMPONENT = re.compile(r"norm|^(ln|bn|gn)(_[a-z0-9]+|\d+)?$", re.IGNORECASE)


def is_excluded(name: str, shape=None) -> bool:
    """The default exclusion: biases and normalization weights.

    A parameter is left out when its name has a ``bias`` component (``fc.bias``,
    ``attn.c_attn.bias``), a normalization component (``LayerNorm``, ``ln_1``, ``bn2``,
    ``input_layernorm``, ``model.norm``), or when it is a vector (``len(shape) <= 1``):
    biases and norm gains are 1-D in every architecture here, and the shape rule also
    catches norms named by position, such as torchvision's ``downsample.1``.

    Embeddings and position tables (``wte``, ``wpe``, ``embed_tokens``: 2-D, no bias or norm
    component) are penalized, as in Hugging Face Trainer's no-decay set (biases and LayerNorm
    weights); unlike Trainer, any other 1-D parameter (a learned scale) is left out too.
    """
    parts = name.split(".")
    if any(p == "bias" or p.endswith("_bias") for p in parts):
        return True
    if any(_NORM_COMPONENT.search(p) for p in parts[:-1] or parts):
        return True
    return shape is not None and len(tuple(shape)) <= 1
