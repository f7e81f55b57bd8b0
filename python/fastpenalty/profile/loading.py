"""Where the weights come from: an embedded model, or a checkpoint file read once.

Every loader yields torch tensors one at a time, so at most one copy of the model is held:
safetensors files are opened lazily (safe_open copies each tensor out of the file mapping),
torch files are memory-mapped (``torch.load(mmap=True)``, the tensors stay backed by the file),
and ``.npz`` members are decompressed one by one.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field

from .. import models
from .errors import ProfileError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SUFFIXES = (".safetensors", *TORCH_SUFFIXES, ".npz")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "params")
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class Weights:
    tensors: dict  # name -> torch tensor, in file / model order
    source: str  # what the header line says
    skipped: list = field(default_factory=list)  # (name, reason)


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the profile command
        raise ProfileError("the profile command needs PyTorch: pip install torch") from None
    return torch


def _keep(name, tensor, skipped) -> bool:
    torch = _torch()
    if name.rsplit(".", 1)[-1] in _BUFFER_SUFFIXES:
        skipped.append((name, "normalization statistic, not a parameter"))
        return False
    if tensor.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        skipped.append((name, f"dtype {str(tensor.dtype).replace('torch.', '')} is not a float weight"))
        return False
    return True


def _convert(tensor, dtype, device):
    if dtype is not None:
        tensor = tensor.to(getattr(_torch(), dtype))
    return tensor.to(device) if str(device) != "cpu" else tensor


def generated(name: str, dtype: str | None, seed: int, device: str, progress=None) -> Weights:
    if name not in models.names():
        raise ProfileError(f"unknown model {name!r}; known models: {', '.join(models.names())}", code=2)
    tensors = models.materialize(name, dtype=dtype or "float32", seed=seed, backend="torch",
                                 device=device, progress=progress)
    return Weights(tensors, f"{name} (generated in-process, seed {seed})")


def _read_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError:
        raise ProfileError("reading .safetensors needs the safetensors package: "
                           "pip install safetensors") from None
    with safe_open(path, framework="pt", device="cpu") as f:
        for key in f.keys():
            yield key, f.get_tensor(key)


def _flatten(obj, prefix=""):
    torch = _torch()
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))


def _torch_load(path, mmap: bool):
    torch = _torch()
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # weights_only refuses arbitrary pickled objects (a whole nn.Module, custom classes):
        # keep torch's one-line reason, drop its multi-paragraph advice.
        text = str(exc)
        if "WeightsUnpickler error:" not in text:
            raise
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0]
        reason = reason.split(" was not an allowed")[0].strip()
        if "Unsupported global" in reason:
            raise ValueError(f"it holds pickled objects, not only tensors ({reason}); "
                             "save model.state_dict() instead") from None
        raise ValueError(f"not a torch checkpoint ({reason})") from None


def _read_torch(path):
    try:
        obj = _torch_load(path, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        obj = _torch_load(path, mmap=False)  # legacy (non-zip) format cannot be memory-mapped
    while isinstance(obj, dict):  # training checkpoints wrap the state_dict
        wrapped = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)]
        if not wrapped:
            break
        obj = wrapped[0]
    if not isinstance(obj, dict):
        raise ValueError(f"holds a {type(obj).__name__}, not a state_dict")
    yield from _flatten(obj)


def _read_npz(path):
    import numpy as np
    torch = _torch()
    if not zipfile.is_zipfile(path):
        raise ValueError("not a zip archive")
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            array = archive[key]
            if array.dtype.kind != "f":
                yield key, f"dtype {array.dtype} is not a float weight"
            else:
                yield key, torch.from_numpy(np.ascontiguousarray(array))


def checkpoint(path: str, dtype: str | None, device: str, progress=None) -> Weights:
    if not os.path.exists(path):
        raise ProfileError(f"no such file: {path}")
    if os.path.isdir(path):
        raise ProfileError(f"{path} is a directory; expected a checkpoint file ({', '.join(SUFFIXES)})")
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".safetensors":
        reader, kind = _read_safetensors, "safetensors"
    elif suffix in TORCH_SUFFIXES:
        reader, kind = _read_torch, "torch state_dict"
    elif suffix == ".npz":
        reader, kind = _read_npz, "npz"
    else:
        raise ProfileError(f"cannot read {path}: unknown checkpoint format {suffix or '(no suffix)'!r}; "
                           f"expected one of {', '.join(SUFFIXES)}", code=2)
    tensors, skipped = {}, []
    try:
        for name, tensor in reader(path):
            if isinstance(tensor, str):  # the reader's reason to skip it
                skipped.append((name, tensor))
            elif _keep(name, tensor, skipped):
                tensors[name] = _convert(tensor, dtype, device)
                if progress is not None:
                    progress(tensor.numel() * tensor.element_size())
    except ProfileError:
        raise
    except Exception as exc:  # any reader failure becomes one line naming the file
        detail = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split()) or type(exc).__name__
        raise ProfileError(f"cannot read {path} as {kind}: {detail[:300]}") from None
    if not tensors:
        raise ProfileError(f"{path} holds no floating-point weights")
    return Weights(tensors, f"{path} ({kind})", skipped)
