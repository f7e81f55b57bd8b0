"""Property tests (hypothesis): random shapes, layouts, values and factors against the oracle; the
gradient and the value are linear in the factors; accumulate_ is grad added to g."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastpenalty
from fastpenalty import reference
from _tolerances import (
    FLOAT64,
    FLOAT_DTYPES,
    VALUE_ATOL,
    VALUE_RTOL,
    as_float64,
    assert_elements_close,
    assert_value_close,
)

ISAS = fastpenalty.available_isas()

dtypes = st.sampled_from(FLOAT_DTYPES)
# Up to 10: larger gradients of fp16 weights would sit at the fp16 overflow edge, where a
# rounding apart decides between inf and 65504.
factors = st.one_of(st.just(0.0), st.floats(1e-6, 10.0), st.floats(0.0, 10.0))
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=40)


@st.composite
def weight_arrays(draw, dtype=None):
    """Finite weights of a float dtype, with a strided or offset layout some of the time."""
    dtype = draw(dtypes) if dtype is None else dtype
    shape = draw(shapes)
    elements = st.floats(-100.0, 100.0, allow_subnormal=False)
    values = draw(hnp.arrays(np.float64, shape, elements=elements, fill=st.just(0.0)))
    w = values.astype(dtype)
    layout = draw(st.sampled_from(["contiguous", "offset", "reversed", "transposed"]))
    if layout == "offset":
        holder = np.zeros(w.size + 1, dtype)
        holder[1:] = w.reshape(-1)
        w = holder[1:].reshape(w.shape)
    elif layout == "reversed" and w.ndim:
        w = w[::-1]
    elif layout == "transposed":
        w = w.T
    return w


def assert_value_matches(actual, expected, dtype):
    assert_value_close(actual, expected, VALUE_RTOL[dtype], VALUE_ATOL[dtype])


@st.composite
def isa_choice(draw):
    return draw(st.sampled_from(ISAS))


@pytest.fixture
def restore_isa():
    previous = fastpenalty.get_isa()
    yield
    fastpenalty.set_isa(previous)


@settings(max_examples=80)
@given(w=weight_arrays(), l1=factors, l2=factors, isa=isa_choice())
def test_value_and_grad_match_reference(restore_isa, w, l1, l2, isa):
    fastpenalty.set_isa(isa)
    assert_value_matches(fastpenalty.l1_l2(w, l1, l2), reference.l1_l2(w, l1, l2), w.dtype)
    assert_value_matches(fastpenalty.l1(w, l1), reference.l1(w, l1), w.dtype)
    assert_value_matches(fastpenalty.l2(w, l2), reference.l2(w, l2), w.dtype)
    assert_elements_close(fastpenalty.grad(w, l1, l2), reference.grad(w, l1, l2), w.dtype)


@settings(max_examples=50)
@given(w=weight_arrays(), l1=factors, l2=factors, isa=isa_choice(), data=st.data())
def test_accumulate_is_grad_added_to_g(restore_isa, w, l1, l2, isa, data):
    fastpenalty.set_isa(isa)
    w = np.ascontiguousarray(w)
    g = data.draw(hnp.arrays(np.float64, w.shape, elements=st.floats(-10.0, 10.0))).astype(w.dtype)
    g_oracle = g.copy()
    expected = reference.accumulate_(w, g_oracle, l1, l2)
    scale = np.abs(as_float64(g)) + np.abs(as_float64(reference.grad(w, l1, l2)))
    assert_value_matches(fastpenalty.accumulate_(w, g, l1, l2), expected, w.dtype)
    assert_elements_close(g, g_oracle, w.dtype, scale=scale)


@settings(max_examples=40)
@given(w=weight_arrays(dtype=FLOAT64), a=st.floats(0.0, 10.0), b=st.floats(0.0, 10.0))
def test_grad_and_value_are_linear_in_the_factors(w, a, b):
    unit_l1 = fastpenalty.grad(w, 1.0, 0.0)
    unit_l2 = fastpenalty.grad(w, 0.0, 1.0)
    np.testing.assert_array_equal(unit_l1, np.sign(w))
    np.testing.assert_array_equal(unit_l2, 2.0 * w)
    np.testing.assert_allclose(fastpenalty.grad(w, a, b), a * unit_l1 + b * unit_l2, rtol=1e-15, atol=0)
    expected = a * fastpenalty.l1(w, 1.0) + b * fastpenalty.l2(w, 1.0)
    assert_value_close(fastpenalty.l1_l2(w, a, b), expected, 1e-14)


@settings(max_examples=30)
@given(ws=st.lists(weight_arrays(), max_size=12), data=st.data())
def test_many_equals_the_sum_over_tensors(ws, data):
    l1s = data.draw(st.lists(factors, min_size=len(ws), max_size=len(ws)))
    l2s = data.draw(st.lists(factors, min_size=len(ws), max_size=len(ws)))
    expected = sum(reference.l1_l2(w, a, b) for w, a, b in zip(ws, l1s, l2s))
    rtol = max([VALUE_RTOL[w.dtype] for w in ws], default=0.0)
    atol = max([VALUE_ATOL[w.dtype] for w in ws], default=0.0)
    assert_value_close(fastpenalty.value_many(ws, l1s, l2s), expected, rtol, atol)
    contiguous = [np.ascontiguousarray(w) for w in ws]
    gs = [np.zeros_like(w) for w in contiguous]
    assert_value_close(fastpenalty.accumulate_many_(contiguous, gs, l1s, l2s), expected, rtol, atol)
    for w, g, a, b in zip(contiguous, gs, l1s, l2s):
        assert_elements_close(g, reference.grad(w, a, b), w.dtype)
