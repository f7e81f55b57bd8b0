"""The weight a statistic is computed on: a NumPy array on the CPU (no torch needed), or a torch
tensor when --device names an accelerator. --dtype converts it first."""

from __future__ import annotations

import numpy as np

from .errors import ProfileError


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        from .readers import bfloat16_dtype
        try:
            return bfloat16_dtype()
        except ValueError as exc:
            raise ProfileError(str(exc)) from None
    return np.dtype(name)


def to_torch(array: np.ndarray):
    import torch
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(array))


def prepare(array: np.ndarray, dtype: str | None, device: str):
    if dtype is not None and array.dtype != numpy_dtype(dtype):
        array = array.astype(numpy_dtype(dtype))
    if device == "cpu":
        return np.ascontiguousarray(array)
    return to_torch(array).to(device)


def dtype_name(w) -> str:
    return str(w.dtype).replace("torch.", "")
