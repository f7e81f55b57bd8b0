"""accumulate_(w, g): g += grad(w) in one pass, returning the value; against the float64 oracle for
every dtype, ISA and odd size, and on the layouts the in-place contract allows."""
import math

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import (
    VALUE_RTOL,
    as_float64,
    assert_elements_close,
    assert_value_close,
    result_is_fp32,
)

from _cases import FACTORS


def check_accumulate(w, g, l1, l2):
    """Runs accumulate_ on (w, g) and checks value, g and w against the oracle."""
    w_before = w.tobytes()
    g_before = g.copy()
    g_oracle = g.copy()
    expected = reference.accumulate_(w, g_oracle, l1, l2)
    v = fastpenalty.accumulate_(w, g, l1, l2)
    assert type(v) is float
    if result_is_fp32([w.dtype]):
        assert float(np.float32(v)) == v or math.isnan(v)
    assert_value_close(v, expected, VALUE_RTOL[w.dtype])
    grad = reference.grad(w, l1, l2)
    scale = np.abs(as_float64(g_before)) + np.abs(as_float64(grad))
    assert_elements_close(g, g_oracle, w.dtype, scale=scale)
    assert w.tobytes() == w_before, "accumulate_ wrote into w"
    return v


def test_accumulate_matches_reference(isa, float_dtype, odd_size, weights):
    w = weights(odd_size, float_dtype)
    g = weights(odd_size, float_dtype, scale=0.1)
    for l1, l2 in FACTORS.values():
        check_accumulate(w, g, l1, l2)


def test_accumulate_value_equals_l1_l2(isa, float_dtype, factors, weights):
    w = weights(5 * fastpenalty._core.CHUNK + 3, float_dtype)
    g = np.zeros_like(w)
    v = fastpenalty.accumulate_(w, g, *factors)
    assert_value_close(v, fastpenalty.l1_l2(w, *factors), VALUE_RTOL[w.dtype])


def test_accumulate_into_zeros_equals_grad(isa, float_dtype, odd_size, weights):
    w = weights(odd_size, float_dtype)
    g = np.zeros_like(w)
    fastpenalty.accumulate_(w, g, 0.013, 0.021)
    assert_elements_close(g, fastpenalty.grad(w, 0.013, 0.021), float_dtype)


def test_exact_accumulate_on_small_integers(isa, float_dtype, odd_size, rng):
    w = rng.integers(-3, 4, odd_size).astype(float_dtype)
    g = rng.integers(-8, 9, odd_size).astype(float_dtype)
    expected_g = as_float64(g) + 0.5 * np.sign(as_float64(w)) + 0.5 * as_float64(w)
    v = fastpenalty.accumulate_(w, g, 0.5, 0.25)
    np.testing.assert_array_equal(as_float64(g), expected_g)
    exact = 0.5 * np.abs(as_float64(w)).sum() + 0.25 * np.square(as_float64(w)).sum()
    assert v == float((np.float32 if result_is_fp32([float_dtype]) else np.float64)(exact))


def test_zero_factors_leave_g_untouched(isa, float_dtype, odd_size, weights):
    # -0.0 + 0.0 would be +0.0: any write into g shows in its bytes.
    w = weights(odd_size, float_dtype)
    g = np.full(odd_size, -0.0, float_dtype)
    if odd_size > 2:
        g[1] = np.nan
    before = g.tobytes()
    assert fastpenalty.accumulate_(w, g, 0.0, 0.0) == 0.0
    assert fastpenalty.accumulate_(w, g) == 0.0
    assert g.tobytes() == before


@pytest.mark.parametrize("n", [1, 7, 16, 17, 33, 97, 1000])
def test_accumulate_on_element_offset_views(isa, float_dtype, n, weights):
    # C-contiguous and element-aligned, but not aligned to the vector width.
    w = np.zeros(n + 1, float_dtype)[1:]
    g = np.zeros(n + 3, float_dtype)[3:]
    w[...] = weights(n, float_dtype)
    g[...] = weights(n, float_dtype)
    check_accumulate(w, g, 0.013, 0.021)


def test_accumulate_on_disjoint_halves_of_one_buffer(isa, float_dtype, weights):
    buffer = weights(2 * 1001, float_dtype)
    w, g = buffer[:1001], buffer[1001:]
    check_accumulate(w, g, 0.013, 0.021)


@pytest.mark.parametrize("shape", [(), (1,), (13, 7, 5), (3, 1, 4), (2, 0, 3)])
def test_accumulate_on_multidimensional_arrays(isa, float_dtype, shape, weights):
    w = weights(shape, float_dtype)
    g = weights(shape, float_dtype)
    check_accumulate(w, g, 0.013, 0.021)


@pytest.mark.parametrize("n", [1, 17, 1000])
def test_accumulate_with_byte_misaligned_w(isa, float_dtype, n, weights):
    # Misaligned w (read only) may be copied or refused, never answered wrong.
    w = np.zeros(n * float_dtype.itemsize + 1, np.uint8)[1:].view(float_dtype)
    w[...] = weights(n, float_dtype)
    g = weights(n, float_dtype)
    before = g.tobytes()
    try:
        check_accumulate(w, g, 0.013, 0.021)
    except ValueError:
        assert g.tobytes() == before


@pytest.mark.parametrize("position", [0, 5, 16, 31, 64, 96])
def test_accumulate_propagates_nan_and_inf(isa, float_dtype, factors, position, weights):
    w = weights(97, float_dtype)
    w[position] = np.nan
    w[(position + 1) % 97] = np.inf
    g = weights(97, float_dtype)
    v = check_accumulate(w, g, *factors)
    assert math.isnan(v)
    assert math.isnan(float(g[position]))


def test_empty_arrays_give_zero(float_dtype):
    for shape in [(0,), (0, 3)]:
        w, g = np.zeros(shape, float_dtype), np.zeros(shape, float_dtype)
        assert fastpenalty.accumulate_(w, g, 0.1, 0.1) == 0.0


def test_accumulate_check_finite_passes_finite_input(float_dtype, weights):
    w = weights(100, float_dtype)
    g1, g2 = np.zeros_like(w), np.zeros_like(w)
    checked = fastpenalty.accumulate_(w, g1, 0.1, 0.2, check_finite=True)
    assert checked == fastpenalty.accumulate_(w, g2, 0.1, 0.2)
    assert g1.tobytes() == g2.tobytes()
