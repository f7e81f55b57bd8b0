"""value_many and accumulate_many_ over lists of NumPy arrays: odd sizes, mixed dtypes, per-tensor
factor lists, empty arrays and lists, 1000+ tensors in one call; against the float64 oracle."""
import math

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import (
    FLOAT_DTYPES,
    as_float64,
    assert_elements_close,
    assert_value_close,
    result_is_fp32,
    value_rtol,
)


def check_value_many(ws, l1, l2):
    before = [w.tobytes() for w in ws]
    v = fastpenalty.value_many(ws, l1, l2)
    assert type(v) is float
    dtypes = [w.dtype for w in ws]
    if result_is_fp32(dtypes):
        assert float(np.float32(v)) == v or math.isnan(v), "mixed/low-precision lists give an fp32 value"
    assert_value_close(v, reference.value_many(ws, l1, l2), value_rtol(dtypes))
    assert [w.tobytes() for w in ws] == before
    return v


def check_accumulate_many(ws, gs, l1, l2):
    gs_before = [g.copy() for g in gs]
    gs_oracle = [g.copy() for g in gs]
    expected = reference.accumulate_many_(ws, gs_oracle, l1, l2)
    v = fastpenalty.accumulate_many_(ws, gs, l1, l2)
    assert type(v) is float
    dtypes = [w.dtype for w in ws]
    if result_is_fp32(dtypes):
        assert float(np.float32(v)) == v or math.isnan(v)
    assert_value_close(v, expected, value_rtol(dtypes))
    l1s = l1 if isinstance(l1, (list, tuple)) else [l1] * len(ws)
    l2s = l2 if isinstance(l2, (list, tuple)) else [l2] * len(ws)
    for i, (w, g) in enumerate(zip(ws, gs)):
        scale = np.abs(as_float64(gs_before[i])) + np.abs(as_float64(reference.grad(w, l1s[i], l2s[i])))
        assert_elements_close(g, gs_oracle[i], w.dtype, scale=scale)
    return v


def odd_size_list(weights, n, dtype):
    """A tensor of size n between two small ones (one of them 2-d, one maybe empty)."""
    return [weights((3, min(n, 41)), dtype), weights(n, dtype), weights(n % 17, dtype)]


def test_value_many_matches_reference(isa, float_dtype, odd_size, weights):
    ws = odd_size_list(weights, odd_size, float_dtype)
    check_value_many(ws, 0.013, 0.021)
    check_value_many(ws, [0.0, 0.5, 0.013], [0.021, 0.0, 1.5])


def test_accumulate_many_matches_reference(isa, float_dtype, odd_size, weights):
    ws = odd_size_list(weights, odd_size, float_dtype)
    gs = [weights(w.shape, float_dtype, scale=0.1) for w in ws]
    check_accumulate_many(ws, gs, 0.013, 0.021)
    check_accumulate_many(ws, gs, [0.0, 0.5, 0.013], [0.021, 0.0, 1.5])


def many_mixed_tensors(rng, weights, count):
    """count tensors of mixed dtypes and shapes, about a tenth of them empty."""
    ws = []
    for i in range(count):
        dtype = FLOAT_DTYPES[i % len(FLOAT_DTYPES)]
        r = rng.random()
        if r < 0.1:
            shape = (0,) if r < 0.05 else (3, 0)
        elif r < 0.9:
            shape = (int(rng.integers(1, 200)),)
        elif r < 0.97:
            shape = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
        else:
            shape = (int(rng.integers(fastpenalty._core.CHUNK, 3 * fastpenalty._core.CHUNK)),)
        ws.append(weights(shape, dtype))
    return ws


def test_a_thousand_tensors_in_one_call(isa, rng, weights):
    ws = many_mixed_tensors(rng, weights, 1200)
    assert sum(w.size == 0 for w in ws) > 50
    gs = [weights(w.shape, w.dtype, scale=0.1) for w in ws]
    l1s = [float(x) for x in rng.uniform(0.0, 0.1, len(ws))]
    l2s = [float(x) for x in rng.uniform(0.0, 0.1, len(ws))]
    l1s[::7] = [0.0] * len(l1s[::7])
    check_value_many(ws, 0.013, 0.021)
    check_value_many(ws, l1s, l2s)
    check_accumulate_many(ws, gs, 0.013, 0.021)
    check_accumulate_many(ws, gs, l1s, l2s)


def test_many_of_same_dtype_equals_sum_of_singles(isa, float_dtype, weights):
    ws = [weights(n, float_dtype) for n in (5, 16384, 0, 33, 70001)]
    total = sum(reference.l1_l2(w, 0.013, 0.021) for w in ws)
    assert_value_close(fastpenalty.value_many(ws, 0.013, 0.021), total, value_rtol([float_dtype]))


def test_empty_lists_give_zero():
    assert fastpenalty.value_many([]) == 0.0
    assert fastpenalty.value_many([], 0.1, 0.1) == 0.0
    assert fastpenalty.accumulate_many_([], [], 0.1, 0.1) == 0.0
    assert fastpenalty.value_many([], [], []) == 0.0


def test_lists_of_only_empty_arrays_give_zero(float_dtype):
    ws = [np.zeros(0, float_dtype), np.zeros((2, 0), float_dtype)]
    gs = [np.zeros(0, float_dtype), np.zeros((2, 0), float_dtype)]
    assert fastpenalty.value_many(ws, 1.0, 1.0) == 0.0
    assert fastpenalty.accumulate_many_(ws, gs, 1.0, 1.0) == 0.0


def test_all_fp64_lists_keep_fp64_precision():
    ws = [np.array([0.1]), np.array([0.2])]
    assert fastpenalty.value_many(ws, 1.0, 0.0) == 0.1 + 0.2
    gs = [np.zeros(1), np.zeros(1)]
    assert fastpenalty.accumulate_many_(ws, gs, 1.0, 0.0) == 0.1 + 0.2


def test_one_low_precision_tensor_makes_the_value_fp32():
    ws = [np.array([0.1]), np.array([0.2], np.float16)]
    v = fastpenalty.value_many(ws, 1.0, 0.0)
    assert v == float(np.float32(0.1 + float(np.float16(0.2))))


def test_sequence_types_accepted(weights):
    ws = [weights(10, np.float64), weights(20, np.float32)]
    gs = [np.zeros_like(w) for w in ws]
    expected = reference.value_many(ws, [0.1, 0.2], [0.3, 0.4])
    assert_value_close(fastpenalty.value_many(tuple(ws), (0.1, 0.2), (0.3, 0.4)), expected, 2e-6)
    v = fastpenalty.accumulate_many_(tuple(ws), tuple(gs), [0.1, 0.2], 0.3)
    assert_value_close(v, reference.value_many(ws, [0.1, 0.2], 0.3), 2e-6)
    assert as_float64(gs[0]).any() and as_float64(gs[1]).any()


def test_value_many_takes_strided_views(isa, float_dtype, weights):
    base = weights((64, 61), float_dtype)
    ws = [base[:, ::3], base.T, base[::-1], np.asfortranarray(base), base[5, ...]]
    check_value_many(ws, 0.013, 0.021)


def element_offset(a, offset):
    holder = np.zeros(a.size + offset, a.dtype)
    holder[offset:] = a.reshape(-1)
    return holder[offset:].reshape(a.shape)


def byte_misaligned(a):
    view = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    return view


def test_many_on_unaligned_views(isa, float_dtype, weights):
    ws = [weights(n, float_dtype) for n in (1, 17, 97, 1000)]
    check_value_many([element_offset(w, 1) for w in ws], 0.013, 0.021)
    check_value_many([byte_misaligned(w) for w in ws], 0.013, 0.021)
    gs = [element_offset(weights(w.shape, float_dtype), 3) for w in ws]
    check_accumulate_many([element_offset(w, 1) for w in ws], gs, 0.013, [0.021, 0.0, 0.5, 0.021])


def test_same_weight_twice_reads_fine(isa, weights):
    w = weights(100, np.float32)
    check_value_many([w, w], 0.1, 0.2)
    gs = [np.zeros_like(w), np.zeros_like(w)]
    check_accumulate_many([w, w], gs, 0.1, 0.2)


def test_zero_factors_leave_every_g_untouched(isa, weights):
    ws = [weights(n, np.float32) for n in (1, 17, 1000)]
    gs = [np.full(w.shape, -0.0, np.float32) for w in ws]
    before = [g.tobytes() for g in gs]
    assert fastpenalty.accumulate_many_(ws, gs, [0.0, 0.0, 0.0], 0.0) == 0.0
    assert [g.tobytes() for g in gs] == before
    # Only the tensor with a nonzero factor gets written.
    fastpenalty.accumulate_many_(ws, gs, [0.0, 0.5, 0.0], 0.0)
    assert gs[0].tobytes() == before[0] and gs[2].tobytes() == before[2]
    assert gs[1].tobytes() != before[1]


def test_nan_in_one_tensor_gives_nan_total(isa, float_dtype, weights):
    ws = [weights(n, float_dtype) for n in (3, 40, 1000)]
    ws[1][17] = np.nan
    assert math.isnan(fastpenalty.value_many(ws, 0.1, 0.1))
    gs = [np.zeros_like(w) for w in ws]
    assert math.isnan(fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1))
    assert math.isnan(float(gs[1][17]))
    assert not np.isnan(as_float64(gs[0])).any() and not np.isnan(as_float64(gs[2])).any()


@pytest.mark.parametrize("check_finite", [False, True])
def test_check_finite_keyword_accepted_on_finite_lists(check_finite, weights):
    ws = [weights(10, d) for d in FLOAT_DTYPES]
    gs = [np.zeros_like(w) for w in ws]
    v = fastpenalty.value_many(ws, 0.1, 0.2, check_finite=check_finite)
    assert_value_close(v, reference.value_many(ws, 0.1, 0.2), 2e-6)
    fastpenalty.accumulate_many_(ws, gs, 0.1, 0.2, check_finite=check_finite)
    assert all(as_float64(g).any() for g in gs)
