"""grad(w) of NumPy arrays against the float64 oracle: every dtype, ISA and odd size, sign(0) = 0,
NaN/Inf propagation, zero factors, strided and unaligned inputs."""
import math

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import as_float64, assert_elements_close

from _cases import FACTORS


def check_grad(w, l1, l2):
    before = w.tobytes()
    out = fastpenalty.grad(w, l1, l2)
    assert isinstance(out, np.ndarray)
    assert out.shape == w.shape and out.dtype == w.dtype
    assert not np.shares_memory(out, w)
    assert w.tobytes() == before, "grad wrote into w"
    assert_elements_close(out, reference.grad(w, l1, l2), w.dtype)
    return out


def test_grad_matches_reference(isa, float_dtype, odd_size, weights):
    w = weights(odd_size, float_dtype)
    for l1, l2 in FACTORS.values():
        check_grad(w, l1, l2)


def test_grad_default_factors_are_zero(float_dtype, weights):
    w = weights(33, float_dtype)
    g = fastpenalty.grad(w)
    assert g.dtype == w.dtype and g.shape == w.shape
    assert not as_float64(g).any()


def test_grad_with_zero_factors_is_zero(isa, float_dtype, weights):
    w = weights(65, float_dtype)
    w[3], w[4], w[5] = np.nan, np.inf, -np.inf
    assert not as_float64(fastpenalty.grad(w, 0.0, 0.0)).any()


def test_sign_of_zero_is_zero(isa, float_dtype):
    # +0.0 and -0.0 at every lane position of a vector and in the tail.
    w = np.tile(np.array([0.0, -0.0, 1.0, -2.0], np.float64), 25)[:97].astype(float_dtype)
    expected_l1 = np.tile([0.0, 0.0, 0.5, -0.5], 25)[:97]
    np.testing.assert_array_equal(as_float64(fastpenalty.grad(w, 0.5, 0.0)), expected_l1)
    expected_both = np.tile([0.0, 0.0, 0.5 + 2.0, -0.5 - 4.0], 25)[:97]
    np.testing.assert_array_equal(as_float64(fastpenalty.grad(w, 0.5, 1.0)), expected_both)


def test_exact_grad_on_small_integers(isa, float_dtype, odd_size, rng):
    w = rng.integers(-3, 4, odd_size).astype(float_dtype)
    expected = 0.5 * np.sign(as_float64(w)) + 2 * 0.25 * as_float64(w)
    np.testing.assert_array_equal(as_float64(fastpenalty.grad(w, 0.5, 0.25)), expected)


@pytest.mark.parametrize("position", [0, 5, 15, 16, 31, 32, 63, 64, 96])
def test_nan_and_inf_propagate_like_numpy(isa, float_dtype, factors, position, weights):
    w = weights(97, float_dtype)
    w[position] = np.nan
    w[(position + 1) % 97] = np.inf
    w[(position + 2) % 97] = -np.inf
    l1, l2 = factors
    out = check_grad(w, l1, l2)
    assert math.isnan(float(out[position]))
    if l2 == 0.0:
        # L2 off: no 2 * 0 * inf = NaN, the gradient at +-inf is +-l1 (checked against the
        # oracle above; here: finite, with the sign of w).
        at_inf = as_float64(out)[[(position + 1) % 97, (position + 2) % 97]]
        assert np.isfinite(at_inf).all() and at_inf[0] > 0 > at_inf[1]
    else:
        assert out[(position + 1) % 97] == np.inf
        assert out[(position + 2) % 97] == -np.inf


@pytest.mark.parametrize("n", [1, 7, 17, 33, 97, 1000])
def test_grad_of_element_offset_view(isa, float_dtype, n, weights):
    w = np.zeros(n + 1, float_dtype)[1:]
    w[...] = weights(n, float_dtype)
    check_grad(w, 0.013, 0.021)


@pytest.mark.parametrize("n", [1, 7, 17, 33, 97, 1000])
def test_grad_of_byte_misaligned_view(isa, float_dtype, n, weights):
    w = np.zeros(n * float_dtype.itemsize + 1, np.uint8)[1:].view(float_dtype)
    w[...] = weights(n, float_dtype)
    check_grad(w, 0.013, 0.021)


STRIDED_VIEWS = {
    "every_third": lambda a: a.reshape(-1)[::3],
    "reversed": lambda a: a.reshape(-1)[::-1],
    "fortran_2d": lambda a: np.asfortranarray(a.reshape(-1)[: 97 * 89].reshape(97, 89)),
    "transposed": lambda a: a.reshape(-1)[: 61 * 53].reshape(61, 53).T,
    "column_slice_3d": lambda a: a.reshape(-1)[: 7 * 41 * 13].reshape(7, 41, 13)[:, 3:37, ::2],
    "zero_d": lambda a: a.reshape(-1)[5, ...],
}


@pytest.mark.parametrize("layout", sorted(STRIDED_VIEWS))
def test_grad_of_strided_view(isa, float_dtype, layout, weights):
    w = STRIDED_VIEWS[layout](weights(3 * fastpenalty._core.CHUNK + 5, float_dtype))
    check_grad(w, 0.013, 0.021)


def test_grad_of_empty_arrays(float_dtype):
    for shape in [(0,), (0, 3), (4, 0, 2)]:
        out = fastpenalty.grad(np.zeros(shape, float_dtype), 0.1, 0.1)
        assert out.shape == shape and out.dtype == float_dtype


def test_grad_is_linear_in_factors(isa, weights):
    w = weights(1001, np.float64)
    g1 = fastpenalty.grad(w, 1.0, 0.0)
    g2 = fastpenalty.grad(w, 0.0, 1.0)
    np.testing.assert_allclose(fastpenalty.grad(w, 0.3, 0.7), 0.3 * g1 + 0.7 * g2, rtol=2e-15, atol=0)
    np.testing.assert_array_equal(g1, np.sign(w))
    np.testing.assert_array_equal(g2, 2.0 * w)


def test_grad_check_finite_passes_finite_input(float_dtype, weights):
    w = weights(100, float_dtype)
    checked = fastpenalty.grad(w, 0.1, 0.2, check_finite=True)
    np.testing.assert_array_equal(as_float64(checked), as_float64(fastpenalty.grad(w, 0.1, 0.2)))
