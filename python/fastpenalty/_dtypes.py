"""dtype facts, built from the C ABI's table (fastpenalty._core.DTYPES, from csrc/common/dtype.h):
codes, names, sizes, the result-dtype rule, and the NumPy dtype of every code."""

from __future__ import annotations

import numpy as np

from . import _core

FLOAT32, FLOAT64, FLOAT16, BFLOAT16 = _core.FLOAT32, _core.FLOAT64, _core.FLOAT16, _core.BFLOAT16

NAMES: dict[int, str] = {code: name for code, name, _ in _core.DTYPES}  # 0 -> "float32", ...
CODES: dict[str, int] = {name: code for code, name in NAMES.items()}  # "float32" -> 0, ...
ITEMSIZE: dict[int, int] = {code: size for code, _, size in _core.DTYPES}  # by code
ITEMSIZE_BY_NAME: dict[str, int] = {NAMES[c]: s for c, s in ITEMSIZE.items()}

try:
    from ml_dtypes import bfloat16 as _bfloat16

    BFLOAT16_DTYPE: np.dtype | None = np.dtype(_bfloat16)
except ImportError:  # bfloat16 NumPy arrays need ml_dtypes; everything else works without it
    BFLOAT16_DTYPE = None


def _numpy_dtype_of(name: str) -> np.dtype | None:
    return BFLOAT16_DTYPE if name == "bfloat16" else np.dtype(name)


# code -> NumPy dtype, for the codes NumPy can hold here (bfloat16 needs ml_dtypes).
NUMPY_DTYPES: dict[int, np.dtype] = {
    code: dt for code, name in NAMES.items() if (dt := _numpy_dtype_of(name)) is not None
}
_NUMPY_CODES = {dt: code for code, dt in NUMPY_DTYPES.items()}

SUPPORTED = ", ".join(NAMES[c] for c in sorted(NAMES)[:-1]) + " and " + NAMES[max(NAMES)]


def itemsize(code: int) -> int:
    """Bytes per element of a dtype code; ValueError for a code the C ABI does not know."""
    try:
        return ITEMSIZE[code]
    except KeyError:
        raise ValueError(f"unknown fastpenalty dtype code {code!r}; known: {sorted(ITEMSIZE)}") from None


def numpy_dtype(code: int) -> np.dtype:
    """The NumPy dtype of a code (bfloat16 needs ml_dtypes)."""
    itemsize(code)
    dt = _numpy_dtype_of(NAMES[code])
    if dt is None:
        raise TypeError("bfloat16 NumPy arrays need the ml_dtypes package")
    return dt


def numpy_code(dtype: np.dtype, what: str = "w") -> int:
    """The C ABI code of a NumPy dtype; TypeError for anything that is not a supported float."""
    code = _NUMPY_CODES.get(np.dtype(dtype))
    if code is None:
        raise TypeError(f"{what} has dtype {np.dtype(dtype)}; fastpenalty supports {SUPPORTED}")
    return code


def result_is_fp64(codes) -> bool:
    """Values come back in fp64 only when every input is fp64 (else fp32, per the contract)."""
    return _core.result_dtype(list(codes)) == FLOAT64
