"""Benchmark inputs: weights, gradients, scratch and probe buffers, made before timing."""

from __future__ import annotations

import math

import numpy as np

from .. import _dtypes

DTYPES = tuple(_dtypes.NAMES[c] for c in sorted(_dtypes.NAMES))
ITEMSIZE = _dtypes.ITEMSIZE_BY_NAME
# Relative tolerance when candidates' values are compared once before timing; sums of half
# precision inputs in NumPy accumulate in half precision, so those are not compared.
VALUE_RTOL = {"float32": 1e-3, "float64": 1e-9}


def numpy_dtype(name: str) -> np.dtype:
    return _dtypes.numpy_dtype(_dtypes.CODES[name])


def dtype_name(dtype) -> str:
    name = str(dtype).replace("torch.", "")
    if name not in ITEMSIZE:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return name


def numpy_weights(n: int, dtype: str, seed: int = 0) -> np.ndarray:
    """n weights ~ normal(0, 0.05), rounded into dtype: no zeros, no subnormals to speak of."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(n, dtype=np.float32)
    w *= np.float32(0.05)
    return w if dtype == "float32" else w.astype(numpy_dtype(dtype))


def filled_like(a: np.ndarray, value: float = 0.0) -> np.ndarray:
    """A new array like ``a`` with every page written once (np.zeros would fault them lazily,
    inside the first timed call)."""
    out = np.empty_like(a)
    out.fill(value)
    return out


def probe_dtype_for(dtypes) -> str:
    """The probe kernels take float32 and float64; other dtypes are probed with float32
    buffers of the same byte count, which is the same traffic."""
    return "float64" if all(d == "float64" for d in dtypes) else "float32"


def flat_probe_arrays(n_bytes: int, dtype: str) -> tuple:
    """(w, g) contiguous NumPy buffers covering n_bytes each, for the core probes."""
    n = max(1, math.ceil(n_bytes / ITEMSIZE[dtype]))
    w = np.full(n, 0.01, dtype=dtype)
    g = np.full(n, 0.0, dtype=dtype)
    return w, g
