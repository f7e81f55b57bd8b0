"""Penalty values (l1, l2, l1_l2) of NumPy arrays against the float64 oracle: every dtype, every
ISA, odd sizes around the vector widths, unaligned and strided views, return types."""
import math

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import (
    FLOAT64,
    VALUE_RTOL,
    assert_value_close,
    result_is_fp32,
)

L1, L2 = 0.013, 0.021

VALUE_OPS = {
    "l1": lambda m, w, **kw: m.l1(w, L1, **kw),
    "l2": lambda m, w, **kw: m.l2(w, L2, **kw),
    "l1_l2": lambda m, w, **kw: m.l1_l2(w, L1, L2, **kw),
}


@pytest.fixture(params=sorted(VALUE_OPS))
def value_op(request):
    return VALUE_OPS[request.param]


def check_value(op, w):
    before = w.tobytes()
    v = op(fastpenalty, w)
    assert type(v) is float
    if result_is_fp32([w.dtype]):
        assert float(np.float32(v)) == v or math.isnan(v), "non-fp64 inputs must give an fp32 value"
    assert_value_close(v, op(reference, w), VALUE_RTOL[w.dtype])
    assert w.tobytes() == before, "a value op wrote into w"
    return v


def test_value_matches_reference(isa, float_dtype, odd_size, value_op, weights):
    check_value(value_op, weights(odd_size, float_dtype))


def test_value_is_exact_on_small_integers(isa, float_dtype, odd_size, rng):
    # Integers in [-2, 2] and power-of-two factors keep every partial sum exact in fp32, so any
    # element dropped or counted twice (tails, chunk borders) shows as a wrong value.
    w = rng.integers(-2, 3, odd_size).astype(float_dtype)
    w[-1:] = 2  # the very last element must be counted too
    abs_sum = float(np.abs(w.astype(np.float64)).sum())
    sq_sum = float(np.square(w.astype(np.float64)).sum())
    # The exact value, rounded once to the result precision.
    result_type = np.float32 if result_is_fp32([float_dtype]) else np.float64
    exact = lambda x: float(result_type(x))  # noqa: E731
    assert fastpenalty.l1(w, 1.0) == exact(abs_sum)
    assert fastpenalty.l2(w, 0.5) == exact(0.5 * sq_sum)
    assert fastpenalty.l1_l2(w, 0.25, 2.0) == exact(0.25 * abs_sum + 2.0 * sq_sum)


@pytest.mark.parametrize("n", [1, 7, 16, 17, 33, 97, 1000])
def test_value_of_element_offset_view(isa, float_dtype, n, value_op, weights):
    buffer = np.zeros(n + 1, float_dtype)
    w = buffer[1:]
    w[...] = weights(n, float_dtype)
    check_value(value_op, w)


@pytest.mark.parametrize("n", [1, 7, 16, 17, 33, 97, 1000])
def test_value_of_byte_misaligned_view(isa, float_dtype, n, value_op, weights):
    # The data pointer is one byte off the element alignment: the value must still be right.
    raw = np.zeros(n * float_dtype.itemsize + 1, np.uint8)
    w = raw[1:].view(float_dtype)
    assert not w.flags.aligned
    w[...] = weights(n, float_dtype)
    check_value(value_op, w)


STRIDED_VIEWS = {
    "every_third": lambda a: a.reshape(-1)[::3],
    "reversed": lambda a: a.reshape(-1)[::-1],
    "fortran_2d": lambda a: np.asfortranarray(a.reshape(-1)[: 97 * 89].reshape(97, 89)),
    "transposed": lambda a: a.reshape(-1)[: 61 * 53].reshape(61, 53).T,
    "column_slice_3d": lambda a: a.reshape(-1)[: 7 * 41 * 13].reshape(7, 41, 13)[:, 3:37, ::2],
    "broadcast": lambda a: np.broadcast_to(a.reshape(-1)[:37], (1000, 37)),
    "zero_d": lambda a: a.reshape(-1)[5, ...],
}


@pytest.mark.parametrize("layout", sorted(STRIDED_VIEWS))
def test_value_of_strided_view(isa, float_dtype, layout, value_op, weights):
    # Larger than a chunk so that a gather/copy path crosses chunk borders.
    base = weights(3 * fastpenalty._core.CHUNK + 5, float_dtype)
    w = STRIDED_VIEWS[layout](base)
    check_value(value_op, w)


def test_value_of_multidimensional_array(isa, float_dtype, value_op, weights):
    check_value(value_op, weights((13, 7, 5), float_dtype))


def test_empty_arrays_give_zero(float_dtype):
    for shape in [(0,), (0, 3), (4, 0, 2)]:
        w = np.zeros(shape, float_dtype)
        assert fastpenalty.l1(w) == 0.0
        assert fastpenalty.l2(w) == 0.0
        assert fastpenalty.l1_l2(w, 1.0, 1.0) == 0.0


def test_default_factors_are_keras_defaults(weights):
    w = weights(100, np.float64)
    assert fastpenalty.l1(w) == fastpenalty.l1(w, 0.01)
    assert fastpenalty.l2(w) == fastpenalty.l2(w, 0.01)
    assert fastpenalty.l1_l2(w) == fastpenalty.l1_l2(w, 0.01, 0.01)
    assert_value_close(fastpenalty.l1(w), reference.l1(w, 0.01), 1e-12)


def test_fp64_keeps_fp64_precision():
    w = np.array([0.1], np.float64)
    assert fastpenalty.l1(w, 1.0) == 0.1
    assert fastpenalty.l2(np.array([3.0]), 0.1) == 0.1 * 9.0


def test_fp32_value_is_rounded_to_fp32():
    w = np.array([0.1], np.float32)
    assert fastpenalty.l1(w, 1.0) == float(np.float32(0.1))


def test_half_precision_weights_do_not_overflow_the_penalty(isa):
    # 4096 * 60000^2 is far beyond the fp16 range; accumulating in fp32 keeps it finite.
    w = np.full(4096, 60000.0, np.float16)
    v = fastpenalty.l2(w, 1.0)
    assert math.isfinite(v)
    assert_value_close(v, 4096 * 60000.0**2, VALUE_RTOL[np.dtype(np.float16)])


def test_fp32_value_overflowing_fp32_is_inf():
    assert fastpenalty.l2(np.array([3e38], np.float32), 1.0) == math.inf


@pytest.mark.parametrize("special", [math.inf, -math.inf])
def test_zero_factor_switches_its_term_off(float_dtype, special):
    w = np.array([1.0, special, 2.0], float_dtype)
    # With l2 = 0 there is no 0 * inf = NaN from the L2 term, and vice versa.
    assert fastpenalty.l1_l2(w, 0.5, 0.0) == math.inf
    assert fastpenalty.l1_l2(w, 0.0, 0.5) == math.inf
    assert fastpenalty.l1_l2(w, 0.0, 0.0) == 0.0
    assert fastpenalty.l1_l2(w, 0.0, 0.0) == reference.l1_l2(w, 0.0, 0.0)
    assert fastpenalty.l1(w, 0.0) == 0.0


@pytest.mark.parametrize("position", [0, 5, 15, 16, 31, 32, 63, 64, 96])
def test_nan_in_w_gives_nan_value(isa, float_dtype, position, value_op, weights):
    # NaN must survive every lane and the tail of the vector loops.
    w = weights(97, float_dtype)
    w[position] = np.nan
    assert math.isnan(value_op(fastpenalty, w))
    assert math.isnan(value_op(reference, w))


@pytest.mark.parametrize("position", [0, 15, 16, 64, 96])
def test_inf_in_w_gives_inf_value(isa, float_dtype, position, value_op, weights):
    w = weights(97, float_dtype)
    w[position] = -np.inf
    assert value_op(fastpenalty, w) == math.inf


def test_factor_types_accepted(weights):
    w = weights(50, np.float64)
    expected = reference.l1_l2(w, 1.0, 2.0)
    assert_value_close(fastpenalty.l1_l2(w, 1, 2), expected, 1e-12)
    assert_value_close(fastpenalty.l1_l2(w, np.float32(1.0), np.float64(2.0)), expected, 1e-12)
    assert_value_close(fastpenalty.l1_l2(w, l1=1.0, l2=2.0), expected, 1e-12)
    assert_value_close(fastpenalty.l1(w, factor=2.0), reference.l1(w, 2.0), 1e-12)
    # -0.0 is finite and >= 0: a valid, zero factor.
    assert fastpenalty.l1_l2(w, -0.0, 2.0) == fastpenalty.l1_l2(w, 0.0, 2.0)


def test_check_finite_passes_finite_input(float_dtype, value_op, weights):
    w = weights(100, float_dtype)
    assert value_op(fastpenalty, w, check_finite=True) == value_op(fastpenalty, w)


def test_value_is_linear_in_factors_and_terms_add(weights):
    w = weights(1000, FLOAT64)
    assert_value_close(fastpenalty.l1_l2(w, 0.3, 0.0), fastpenalty.l1(w, 0.3), 1e-15)
    assert_value_close(fastpenalty.l1_l2(w, 0.0, 0.7), fastpenalty.l2(w, 0.7), 1e-15)
    assert_value_close(
        fastpenalty.l1_l2(w, 0.3, 0.7), fastpenalty.l1(w, 0.3) + fastpenalty.l2(w, 0.7), 1e-14
    )
    assert_value_close(fastpenalty.l1(w, 3.0), 3.0 * fastpenalty.l1(w, 1.0), 1e-15)
