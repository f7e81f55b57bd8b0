"""Built-in model architectures, generated in-process: no download, no transformers/torchvision.

    names()                      -> the model names, DEFAULT first
    describe(name)               -> one line about the model
    parameter_specs(name)        -> [(parameter name, shape), ...] in model order, no memory used
    num_parameters(name)         -> total element count
    materialize(name, dtype="float32", seed=0, backend="torch", device="cpu", progress=None)
                                 -> {parameter name: tensor (torch) or array (numpy)};
                                    progress(n_elements) is called after each tensor
    is_excluded(name, shape)     -> True for the parameters a penalty leaves out by default

Parameter counts (trainable parameters; tied output heads add none):

    gpt2-small   124,439,808   148 tensors   Hugging Face GPT2Model names (wte, wpe, h.N..., ln_f)
    gpt2-xl    1,557,611,200   580 tensors
    bert-base    109,482,240   199 tensors   HF BertModel names, pooler included
    resnet50      25,557,032   161 tensors   torchvision names, BatchNorm buffers not included
    decoder-1b 1,235,814,400   146 tensors   Llama-3.2-1B shape, HF Llama names, tied embeddings
    mlp-tiny           5,852     6 tensors   for tests

Initialization follows each model's own recipe: GPT-2 normal(0, 0.02) with the residual
projections scaled by 1/sqrt(2 * n_layer); BERT and the decoder normal(0, 0.02); ResNet-50
Kaiming-normal convolutions (fan_out, ReLU) and a torch-default uniform classifier; LayerNorm
/ BatchNorm / RMSNorm weights 1 and every other bias 0. ``materialize`` is deterministic for a
seed and gives the same numbers with either backend (see ``materialize.py``).
"""

from __future__ import annotations

import math

from .._exclusion import is_excluded  # noqa: F401  (re-exported as models.is_excluded)
from .architectures import ARCHITECTURES, TensorSpec
from .materialize import canonical_dtype, fill

DEFAULT = "gpt2-small"

__all__ = ["DEFAULT", "names", "describe", "parameter_specs", "num_parameters", "materialize",
           "is_excluded", "canonical_dtype"]


def names() -> list[str]:
    return [DEFAULT] + [n for n in ARCHITECTURES if n != DEFAULT]


def _architecture(name: str):
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def describe(name: str) -> str:
    return _architecture(name).description


def _tensor_specs(name: str) -> list[TensorSpec]:
    return _architecture(name).build()


def parameter_specs(name: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(s.name, s.shape) for s in _tensor_specs(name)]


def num_parameters(name: str) -> int:
    return sum(math.prod(shape) for _, shape in parameter_specs(name))


def materialize(name: str, dtype="float32", seed: int = 0, backend: str = "torch",
                device: str = "cpu", progress=None) -> dict:
    return fill(_tensor_specs(name), dtype=dtype, seed=seed, backend=backend, device=device,
                progress=progress)
