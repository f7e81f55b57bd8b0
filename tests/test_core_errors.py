"""Bad input raises a clear error before anything is written: every error path leaves every g byte
for byte unchanged. check_finite=True raises (naming the tensor) instead of returning NaN/Inf."""
import math

import numpy as np
import pytest

import fastpenalty

F32 = np.float32
NON_FLOAT_DTYPES = [np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128]


def filled(n, dtype=F32, seed=0):
    return (np.random.default_rng(seed).random(n) - 0.5).astype(dtype)


def assert_raises_leaving(gs, exc, fn, match=None):
    """fn() raises exc (message matching ``match``) and leaves every array in gs unchanged."""
    before = [g.tobytes() for g in gs]
    with pytest.raises(exc, match=match):
        fn()
    assert [g.tobytes() for g in gs] == before, "an error path wrote into g"


# ---- dtypes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", NON_FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_float_w_is_a_type_error(dtype):
    w = np.ones(10, dtype)
    for fn in (fastpenalty.l1, fastpenalty.l2, fastpenalty.l1_l2, fastpenalty.grad):
        with pytest.raises(TypeError):
            fn(w)
    with pytest.raises(TypeError):
        fastpenalty.value_many([filled(3), w])
    g = np.ones(10, dtype)
    assert_raises_leaving([g], TypeError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


@pytest.mark.parametrize("dtype", NON_FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_non_float_g_is_refused(dtype):
    # Both a non-float dtype and a dtype mismatch: either error type names the problem.
    g = np.ones(10, dtype)
    w = filled(10)
    assert_raises_leaving([g], (TypeError, ValueError), lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


@pytest.mark.parametrize("g", [[0.0] * 10, None, 0.0, (0.0,) * 10], ids=["list", "none", "float", "tuple"])
def test_non_array_g_is_a_type_error(g):
    with pytest.raises(TypeError):
        fastpenalty.accumulate_(filled(10), g, 0.1, 0.1)
    g0 = np.zeros(10, F32)
    ws = [filled(10), filled(10)]
    assert_raises_leaving([g0], TypeError, lambda: fastpenalty.accumulate_many_(ws, [g0, g]))


def test_dtype_mismatch_is_a_value_error():
    w = filled(10, np.float32)
    for g_dtype in (np.float64, np.float16):
        g = filled(10, g_dtype)
        assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


# ---- shapes and layouts -----------------------------------------------------------------------


@pytest.mark.parametrize("g_shape", [(11,), (9,), (10, 1), (1, 10), (2, 5), ()])
def test_shape_mismatch_is_a_value_error(g_shape):
    w = filled(10)
    g = np.ones(g_shape, F32)
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


def test_read_only_g_is_a_value_error():
    g = filled(10)
    g.flags.writeable = False
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(filled(10), g, 0.1, 0.1))
    broadcast = np.broadcast_to(np.zeros(1, F32), (10,))
    w = filled(10)
    assert_raises_leaving([broadcast], ValueError, lambda: fastpenalty.accumulate_(w, broadcast, 0.1, 0.1))


def test_non_contiguous_g_is_a_value_error():
    buffer = filled(20)
    g = buffer[::2]
    assert_raises_leaving([buffer], ValueError, lambda: fastpenalty.accumulate_(filled(10), g, 0.1, 0.1))


def test_non_contiguous_w_is_a_value_error_for_in_place_ops():
    g = filled(10)
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(filled(20)[::2], g, 0.1, 0.1))


def test_fortran_order_arrays_are_a_value_error_for_in_place_ops():
    w = np.asfortranarray(filled(12).reshape(3, 4))
    g = np.asfortranarray(filled(12).reshape(3, 4))
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))
    g_c = filled(12).reshape(3, 4)
    assert_raises_leaving([g_c], ValueError, lambda: fastpenalty.accumulate_(w, g_c, 0.1, 0.1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
def test_byte_misaligned_g_is_a_value_error(dtype):
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(10 * itemsize + 1, np.uint8)
    g = raw[1:].view(dtype)
    g[...] = filled(10, dtype)
    assert_raises_leaving([raw], ValueError, lambda: fastpenalty.accumulate_(filled(10, dtype), g, 0.1, 0.1))


# ---- overlap ----------------------------------------------------------------------------------


def test_g_is_w_is_a_value_error():
    w = filled(100)
    assert_raises_leaving([w], ValueError, lambda: fastpenalty.accumulate_(w, w, 0.1, 0.1))


@pytest.mark.parametrize("offset", [1, 50, 99, -1, -99])
def test_partially_overlapping_w_and_g_is_a_value_error(offset):
    buffer = filled(300)
    w = buffer[100:200]
    g = buffer[100 + offset : 200 + offset]
    assert_raises_leaving([buffer], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


def test_g_aliasing_w_through_a_reshaped_view_is_a_value_error():
    w = filled(12).reshape(3, 4)
    g = w.reshape(3, 4)[...]
    assert_raises_leaving([w], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1))


def test_overlap_in_the_many_form_is_a_value_error():
    ws = [filled(10, seed=i) for i in range(4)]
    gs = [np.zeros(10, F32) for _ in range(4)]
    gs_bad = gs[:2] + [ws[2]] + gs[3:]
    assert_raises_leaving(gs + ws, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs_bad, 0.1, 0.1))


def test_g_of_one_pair_aliasing_another_w_is_a_value_error():
    # gs[0] is ws[1]: the result would depend on the order the pairs run in.
    ws = [filled(10, seed=i) for i in range(3)]
    gs = [ws[1], np.zeros(10, F32), np.zeros(10, F32)]
    assert_raises_leaving(gs + ws, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1))


def test_same_g_twice_is_a_value_error():
    # Two pairs writing one g would race across threads (lost updates): it must be refused.
    ws = [filled(4 * fastpenalty._core.CHUNK, seed=1), filled(4 * fastpenalty._core.CHUNK, seed=2)]
    g = np.zeros(ws[0].size, F32)
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_many_(ws, [g, g], 0.0, 0.5))
    halves = np.zeros(2 * ws[0].size - 10, F32)
    g0, g1 = halves[: ws[0].size], halves[-ws[0].size :]
    assert_raises_leaving([halves], ValueError, lambda: fastpenalty.accumulate_many_(ws, [g0, g1], 0.0, 0.5))


# ---- factors ----------------------------------------------------------------------------------

BAD_FACTORS = [-1.0, -1e-30, math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", BAD_FACTORS)
def test_bad_factor_is_a_value_error_naming_it(bad):
    w = filled(10)
    with pytest.raises(ValueError, match="factor"):
        fastpenalty.l1(w, bad)
    with pytest.raises(ValueError, match="factor"):
        fastpenalty.l2(w, bad)
    for name in ("l1", "l2"):
        kw = {name: bad}
        with pytest.raises(ValueError, match=name):
            fastpenalty.l1_l2(w, **kw)
        with pytest.raises(ValueError, match=name):
            fastpenalty.grad(w, **kw)
        with pytest.raises(ValueError, match=name):
            fastpenalty.value_many([w, w], **kw)
        g = filled(10)
        assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, **kw), match=name)
        gs = [filled(10), filled(10)]
        call = lambda: fastpenalty.accumulate_many_([w, w], gs, **kw)  # noqa: E731
        assert_raises_leaving(gs, ValueError, call, match=name)


@pytest.mark.parametrize("bad", BAD_FACTORS)
@pytest.mark.parametrize("name", ["l1", "l2"])
def test_bad_per_tensor_factor_is_a_value_error_naming_it(name, bad):
    ws = [filled(10, seed=i) for i in range(5)]
    gs = [filled(10, seed=10 + i) for i in range(5)]
    kw = {name: [0.1, 0.1, 0.1, bad, 0.1]}
    with pytest.raises(ValueError, match=name):
        fastpenalty.value_many(ws, **kw)
    assert_raises_leaving(gs, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs, **kw), match=name)


@pytest.mark.parametrize("length", [0, 2, 4])
@pytest.mark.parametrize("name", ["l1", "l2"])
def test_factor_list_of_wrong_length_is_a_value_error(name, length):
    ws = [filled(10, seed=i) for i in range(3)]
    gs = [filled(10, seed=10 + i) for i in range(3)]
    kw = {name: [0.1] * length}
    with pytest.raises(ValueError, match=name):
        fastpenalty.value_many(ws, **kw)
    assert_raises_leaving(gs, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs, **kw), match=name)


# ---- lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_gs", [0, 2, 4])
def test_lists_of_different_lengths_are_a_value_error(n_gs):
    ws = [filled(10, seed=i) for i in range(3)]
    gs = [filled(10, seed=10 + i) for i in range(n_gs)]
    assert_raises_leaving(gs, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1))


BAD_PAIRS = {
    "shape": lambda w: np.zeros(w.size + 1, w.dtype),
    "dtype": lambda w: np.zeros(w.shape, np.float64),
    "read_only": lambda w: np.broadcast_to(np.zeros(1, w.dtype), w.shape),
    "non_contiguous": lambda w: np.zeros(2 * w.size, w.dtype)[::2],
    "misaligned": lambda w: np.zeros(w.nbytes + 1, np.uint8)[1:].view(w.dtype),
    "is_w": lambda w: w,
}


@pytest.mark.parametrize("problem", sorted(BAD_PAIRS))
def test_one_bad_pair_leaves_every_g_unchanged(problem):
    # The bad pair sits after good ones (and before one) that must not have been updated either.
    ws = [filled(n, seed=n) for n in (5, 17, 40000, 33, 8)]
    gs = [filled(w.size, seed=100 + i) for i, w in enumerate(ws)]
    gs[3] = BAD_PAIRS[problem](ws[3])
    assert_raises_leaving(gs + ws, ValueError, lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1))


def test_non_float_tensor_in_a_list_leaves_every_g_unchanged():
    ws = [filled(10, seed=i) for i in range(4)]
    gs = [filled(10, seed=10 + i) for i in range(4)]
    ws[2] = ws[2].astype(np.int32)
    gs[2] = gs[2].astype(np.int32)
    assert_raises_leaving(gs, TypeError, lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1))


# ---- check_finite -----------------------------------------------------------------------------


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=lambda d: np.dtype(d).name)
def test_check_finite_raises_on_non_finite_w(special, dtype):
    # The bad element is in the last chunk: the check must come before any write, not after.
    n = 3 * fastpenalty._core.CHUNK + 5
    w = filled(n, dtype)
    w[-2] = special
    for fn in (fastpenalty.l1, fastpenalty.l2, fastpenalty.l1_l2, fastpenalty.grad):
        with pytest.raises(ValueError):
            fn(w, check_finite=True)
    g = filled(n, dtype, seed=1)
    assert_raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1, check_finite=True))


def test_check_finite_names_the_offending_tensor_in_a_list():
    ws = [filled(100, seed=i) for i in range(12)]
    ws[7][50] = np.nan
    gs = [filled(100, seed=100 + i) for i in range(12)]
    with pytest.raises(ValueError, match=r"\b7\b"):
        fastpenalty.value_many(ws, 0.1, 0.1, check_finite=True)
    call = lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1, check_finite=True)  # noqa: E731
    assert_raises_leaving(gs, ValueError, call, match=r"\b7\b")


def test_check_finite_names_w_for_a_single_tensor():
    w = filled(10)
    w[3] = np.inf
    with pytest.raises(ValueError, match=r"\bw\b"):
        fastpenalty.l1_l2(w, 0.1, 0.1, check_finite=True)
