"""torch state_dicts (.pt/.pth/.bin/.ckpt), memory-mapped (``torch.load(mmap=True)``), so a tensor
occupies memory only while it is being read. This is the one format that needs torch.

Tensors that are views of the same storage with the same offset, shape and strides (a tied
embedding and output head) are one tensor: the later names are reported as tied to the first."""

from __future__ import annotations

import pickle

from ..errors import ProfileError
from . import Item, skip_reason

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module", "params")


def torch_module():
    try:
        import torch
    except ImportError:
        raise ProfileError("reading a torch checkpoint (.pt/.pth/.bin/.ckpt) needs PyTorch: "
                           "pip install torch (or convert it to .safetensors)") from None
    return torch


def to_numpy(tensor):
    """A zero-copy NumPy view of a CPU tensor (bfloat16 through ml_dtypes)."""
    torch = torch_module()
    tensor = tensor.detach().resolve_conj().resolve_neg()
    if tensor.dtype == torch.bfloat16:
        from . import bfloat16_dtype
        dtype = bfloat16_dtype()
        return tensor.view(torch.int16).numpy().view(dtype)
    return tensor.numpy()


def _flatten(obj, prefix=""):
    torch = torch_module()
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))


def _load(path, mmap: bool):
    torch = torch_module()
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


def _state_dict(path):
    try:
        obj = _load(path, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        obj = _load(path, mmap=False)  # legacy (non-zip) format cannot be memory-mapped
    while isinstance(obj, dict):  # training checkpoints wrap the state_dict
        wrapped = [obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)]
        if not wrapped:
            break
        obj = wrapped[0]
    if not isinstance(obj, dict):
        raise ValueError(f"holds a {type(obj).__name__}, not a state_dict")
    return obj


def _storage_key(tensor):
    storage = tensor.untyped_storage()
    return (storage.data_ptr(), storage.nbytes(), tensor.storage_offset(), tuple(tensor.shape),
            tuple(tensor.stride()), tensor.dtype)


def read(path: str):
    torch = torch_module()
    first = {}
    state = _state_dict(path)
    for name, tensor in _flatten(state):
        if tensor.is_sparse or tensor.layout != torch.strided:
            yield Item(name, skip=f"layout {tensor.layout} is not a dense weight")
            continue
        key = _storage_key(tensor)
        if key in first and tensor.numel():
            yield Item(name, tied_to=first[key])
            continue
        first[key] = name
        reason = skip_reason(name, str(tensor.dtype).replace("torch.", ""))
        yield Item(name, skip=reason) if reason else Item(name, to_numpy(tensor))
