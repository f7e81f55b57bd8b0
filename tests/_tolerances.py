"""Per-dtype tolerances for comparing fastpenalty against the float64 oracle, and the asserts
that apply them. Importable from any test file: ``from _tolerances import ...``."""
import math

import ml_dtypes
import numpy as np

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
FLOAT16 = np.dtype(np.float16)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)

FLOAT_DTYPES = (FLOAT32, FLOAT64, FLOAT16, BFLOAT16)
DTYPE_IDS = {FLOAT32: "float32", FLOAT64: "float64", FLOAT16: "float16", BFLOAT16: "bfloat16"}

# Relative error of a penalty value against the oracle. Everything but fp64 accumulates in
# fp32 (blocked) and is rounded to fp32; the contract asks for 1e-6 at 1e7 elements, these
# allow twice that because a value adds two such sums.
VALUE_RTOL = {FLOAT32: 2e-6, FLOAT16: 2e-6, BFLOAT16: 2e-6, FLOAT64: 1e-12}

# Elementwise results (grad, g += grad) follow csrc/common/penalty_math.h: float32 arithmetic
# (factors rounded to float32, mul, add, add into g) unless a factor is outside float32's safe
# range, then double like the oracle. test_core_elementwise_bits checks the exact bits; these
# bounds (three units in the last place relative to the size of the terms, plus one subnormal
# step) are for comparisons against the float64 oracle.
ELEMENT_RTOL = {dt: 3.0 * float(ml_dtypes.finfo(dt).eps) for dt in FLOAT_DTYPES}
ELEMENT_ATOL = {dt: float(ml_dtypes.finfo(dt).smallest_subnormal) for dt in FLOAT_DTYPES}


# The absolute floor of a value's error: fp32 results are rounded to fp32, which flushes values
# below its smallest subnormal to 0 (and squares of tiny fp32 weights underflow in fp32).
VALUE_ATOL = {FLOAT32: 2.0**-149, FLOAT16: 2.0**-149, BFLOAT16: 2.0**-149, FLOAT64: 0.0}


def dtype_id(dtype):
    return DTYPE_IDS[np.dtype(dtype)]


def value_rtol(dtypes):
    """The tolerance for a value over tensors of these dtypes (the loosest one)."""
    dtypes = [np.dtype(d) for d in dtypes]
    return max((VALUE_RTOL[d] for d in dtypes), default=VALUE_RTOL[FLOAT64])


def result_is_fp32(dtypes):
    """Contract: the value is fp64 only when every input is fp64, fp32 otherwise."""
    return any(np.dtype(d) != FLOAT64 for d in dtypes)


def assert_value_close(actual, expected, rtol, atol=0.0):
    """A penalty value: NaN matches NaN, infinities match exactly, else error <= rtol * |expected| + atol."""
    actual, expected = float(actual), float(expected)
    if math.isnan(expected) or math.isinf(expected):
        assert actual == expected or (math.isnan(actual) and math.isnan(expected)), (actual, expected)
        return
    assert abs(actual - expected) <= rtol * abs(expected) + atol, (
        f"value {actual!r} vs oracle {expected!r}: relative error "
        f"{abs(actual - expected) / max(abs(expected), 1e-300):.3g} > {rtol:.3g}"
    )


def as_float64(a):
    return np.asarray(a).astype(np.float64)


def assert_elements_close(actual, expected, dtype, scale=None):
    """Elementwise results of one dtype against the oracle.

    ``scale`` is the magnitude the rounding error is relative to (e.g. |g| + |grad| for
    g += grad, where the sum may cancel); by default |expected|. NaN and infinities must sit at
    the same positions (with the same sign)."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    assert actual.dtype == dtype, (actual.dtype, dtype)
    a = as_float64(actual)
    e = as_float64(expected)
    assert a.shape == e.shape, (a.shape, e.shape)
    if np.array_equal(a, e, equal_nan=True):
        return
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    assert np.array_equal(nan_a, nan_e), f"NaN at {np.flatnonzero(nan_a != nan_e)[:10]}"
    inf_e = np.isinf(e)
    assert np.array_equal(a[inf_e], e[inf_e]), "infinities differ"
    finite = ~(nan_e | inf_e)
    assert not np.isinf(a[finite]).any(), "unexpected infinity"
    s = np.abs(e) if scale is None else np.broadcast_to(as_float64(scale), e.shape)
    err = np.abs(a[finite] - e[finite])
    bound = ELEMENT_RTOL[dtype] * s[finite] + ELEMENT_ATOL[dtype]
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, (
        f"{bad.size} elements off, first at flat index {bad[0]}: "
        f"{a[finite][bad[0]]!r} vs oracle {e[finite][bad[0]]!r}"
    )
