"""dtype codes of the C ABI and their NumPy counterparts."""

from __future__ import annotations

import numpy as np

FLOAT32, FLOAT64, FLOAT16, BFLOAT16 = 0, 1, 2, 3

try:
    from ml_dtypes import bfloat16 as _bfloat16

    BFLOAT16_DTYPE: np.dtype | None = np.dtype(_bfloat16)
except ImportError:  # bfloat16 NumPy arrays need ml_dtypes; everything else works without it
    BFLOAT16_DTYPE = None

_CODES = {np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64, np.dtype(np.float16): FLOAT16}
if BFLOAT16_DTYPE is not None:
    _CODES[BFLOAT16_DTYPE] = BFLOAT16

SUPPORTED = "float32, float64, float16 and bfloat16"


def numpy_code(dtype: np.dtype, what: str = "w") -> int:
    """The C ABI code of a NumPy dtype; TypeError for anything that is not a supported float."""
    code = _CODES.get(np.dtype(dtype))
    if code is None:
        raise TypeError(f"{what} has dtype {np.dtype(dtype)}; fastpenalty supports {SUPPORTED}")
    return code


def result_is_fp64(codes) -> bool:
    """Values come back in fp64 only when every input is fp64 (else fp32, per the contract)."""
    return len(codes) > 0 and all(c == FLOAT64 for c in codes)
