"""fastpenalty.prox_ / prox_many_ on NumPy arrays (and DLPack arrays): the results and the zero
counts against the float64 oracle (fastpenalty.reference) over dtypes, odd sizes, every ISA,
per-array factors and empty inputs; every refused call leaves every array's bytes as they were."""
import math

import numpy as np
import pytest

import fastpenalty
from fastpenalty import reference
from _tolerances import (
    ELEMENT_ATOL,
    ELEMENT_RTOL,
    FLOAT_DTYPES,
    assert_value_close,
    result_is_fp32,
    value_rtol,
)

# (lr, l1, l2): the L1 shrink alone, the L2 scaling alone, both, and a shrink past most weights.
STEPS = {"l1": (0.1, 0.5, 0.0), "l2": (0.1, 0.0, 0.8), "both": (0.05, 0.7, 0.3),
         "strong": (1.0, 1.5, 2.0)}


def assert_prox_close(actual, expected, w_before, lr, l1):
    """Elementwise against the oracle. The kernels may round the threshold lr*l1 and the
    quotient in float32, so the error is relative to |w| + lr*l1 (the size of the terms)."""
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(e))
    finite = np.isfinite(e)
    assert np.array_equal(a[~finite & ~np.isnan(e)], e[~finite & ~np.isnan(e)])
    scale = np.abs(w_before.astype(np.float64)) + lr * l1
    dtype = actual.dtype
    bound = ELEMENT_RTOL[dtype] * scale + ELEMENT_ATOL[dtype]
    bad = finite & ~(np.abs(a - e) <= bound)
    assert not bad.any(), f"{bad.sum()} elements differ, first at {np.flatnonzero(bad)[:5]}"
    # zeros carry the oracle's sign: +0 wherever the step wrote, -0 kept where it wrote nothing
    both = (a == 0) & (e == 0)
    assert np.array_equal(np.signbit(a[both]), np.signbit(e[both])), "a zero has the wrong sign"


def check_prox_many(ws, lr, l1, l2):
    before = [w.copy() for w in ws]
    oracle = [w.copy() for w in ws]
    expected_value, expected_zeros = reference.prox_many_(oracle, lr, l1, l2)
    result = fastpenalty.prox_many_(ws, lr, l1, l2)
    assert isinstance(result, fastpenalty.ProxResult)
    value, zeros = result
    assert type(value) is float and type(zeros) is int
    dtypes = [w.dtype for w in ws]
    if result_is_fp32(dtypes):
        assert float(np.float32(value)) == value or math.isnan(value)
    n = len(ws)
    per = [f if isinstance(f, (list, tuple)) else [f] * n for f in (lr, l1, l2)]
    for i, w in enumerate(ws):
        assert_prox_close(w, oracle[i], before[i], per[0][i], per[1][i])
    assert zeros == sum(int(np.count_nonzero(w.astype(np.float64) == 0)) for w in ws)
    assert zeros == expected_zeros
    assert_value_close(value, expected_value, value_rtol(dtypes), atol=2.0**-149)
    return result


@pytest.mark.parametrize("step", sorted(STEPS))
def test_prox_matches_reference(isa, float_dtype, odd_size, weights, step):
    lr, l1, l2 = STEPS[step]
    w = weights(odd_size, float_dtype)
    before, oracle = w.copy(), w.copy()
    expected = reference.prox_(oracle, lr, l1, l2)
    value, zeros = fastpenalty.prox_(w, lr, l1, l2)
    assert_prox_close(w, oracle, before, lr, l1)
    assert zeros == expected[1] == int(np.count_nonzero(w.astype(np.float64) == 0))
    assert_value_close(value, expected[0], value_rtol([float_dtype]), atol=2.0**-149)


def test_prox_many_mixed_dtypes_and_per_array_factors(isa, weights):
    ws = [weights((3, 5), dt) for dt in FLOAT_DTYPES] + [weights(17, np.float32),
                                                         weights(0, np.float64)]
    n = len(ws)
    check_prox_many([w.copy() for w in ws], 0.1, 0.5, 0.25)
    check_prox_many([w.copy() for w in ws], [0.1 * (i + 1) for i in range(n)], 0.3, 0.0)
    check_prox_many([w.copy() for w in ws], 0.2, [0.1 * i for i in range(n)],
                    [0.05 * (n - i) for i in range(n)])


def test_value_precision_follows_the_dtypes(weights):
    ws64 = [weights(33, np.float64), weights(5, np.float64)]
    v, _ = fastpenalty.prox_many_(ws64, 0.1, 0.3, 0.2)
    check = [w.copy() for w in ws64]
    assert v == pytest.approx(reference.value_many(check, 0.3, 0.2), rel=1e-12)
    mixed = [weights(33, np.float64), weights(5, np.float32)]
    v, _ = fastpenalty.prox_many_(mixed, 0.1, 0.3, 0.2)
    assert float(np.float32(v)) == v


def test_known_values_and_special_elements():
    w = np.array([1.0, -0.5, 0.05, -0.05, 0.0, -0.0, np.nan, np.inf, -np.inf], dtype=np.float64)
    value, zeros = fastpenalty.prox_(w, 0.1, l1=1.0, l2=0.5)  # threshold 0.1, divisor 1.1
    expected = np.array([0.9 / 1.1, -0.4 / 1.1, 0, 0, 0, 0, np.nan, np.inf, -np.inf])
    np.testing.assert_allclose(w, expected, rtol=1e-15)
    assert not np.signbit(w[2:6]).any()  # every shrunk element, -0 too, is +0
    assert zeros == 4
    assert math.isnan(value)
    # with l1 = 0 only the scaling acts; a written -0 is +0 too
    w = np.array([-0.0, 2.0, -3.0], dtype=np.float32)
    value, zeros = fastpenalty.prox_(w, 0.5, l2=1.0)
    np.testing.assert_array_equal(w, np.array([0.0, 1.0, -1.5], dtype=np.float32))
    assert not np.signbit(w[0]) and zeros == 1 and value == pytest.approx(1.0 + 1.5 ** 2)
    # nothing written: a -0 keeps its sign
    w = np.array([-0.0, 2.0], dtype=np.float32)
    fastpenalty.prox_(w, 0.0, l1=1.0)
    assert np.signbit(w[0])


@pytest.mark.parametrize("lr, l1, l2", [(0.0, 1.0, 1.0), (0.5, 0.0, 0.0)])
def test_nothing_written_without_a_step(weights, lr, l1, l2):
    w = weights(65, np.float32)
    w[3] = np.nan
    before = w.tobytes()
    value, zeros = fastpenalty.prox_(w, lr, l1, l2)
    assert w.tobytes() == before
    assert zeros == int(np.count_nonzero(w == 0))
    expected = reference.l1_l2(w, l1, l2)
    assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, rel=2e-6)


def test_empty_inputs():
    assert fastpenalty.prox_many_([], 0.1, 0.5) == (0.0, 0)
    assert fastpenalty.prox_(np.zeros(0, np.float32), 0.1, 0.5) == (0.0, 0)
    assert fastpenalty.prox_many_([np.zeros((0, 3)), np.zeros(0, np.float16)], 0.1, 0.5, 0.5) == (0.0, 0)


def test_fast_path_and_checked_path_agree(weights):
    ws = [weights(97, dt) for dt in FLOAT_DTYPES]
    a, b = [w.copy() for w in ws], [w.copy() for w in ws]
    ra = fastpenalty.prox_many_(a, 0.1, 0.4, 0.2)
    rb = fastpenalty.prox_many_(b, 0.1, 0.4, 0.2, check_finite=True)  # the Python path
    assert ra == rb
    assert [x.tobytes() for x in a] == [y.tobytes() for y in b]


# ------------------------------------------------------------------------------------- errors

def _refused(ws, call, error, match):
    before = [w.tobytes() for w in ws]
    with pytest.raises(error, match=match):
        call()
    assert [w.tobytes() for w in ws] == before, "a refused call wrote memory"


@pytest.mark.parametrize("name, kwargs", [
    ("lr", dict(lr=-0.1)), ("lr", dict(lr=math.inf)), ("lr", dict(lr=math.nan)),
    ("l1", dict(l1=-1.0)), ("l2", dict(l2=math.inf)), ("l1", dict(l1=math.nan))])
def test_bad_factors_are_refused_before_any_write(weights, name, kwargs):
    ws = [weights(33, np.float32), weights(7, np.float64)]
    args = {**dict(lr=0.1, l1=0.5, l2=0.5), **kwargs}
    _refused(ws, lambda: fastpenalty.prox_many_(ws, **args), ValueError, rf"\b{name}\b")
    _refused(ws[:1], lambda: fastpenalty.prox_(ws[0], **args), ValueError, rf"\b{name}\b")


def test_bad_per_array_factors_are_refused(weights):
    ws = [weights(33, np.float32), weights(7, np.float64)]
    _refused(ws, lambda: fastpenalty.prox_many_(ws, [0.1, -0.1], 0.5), ValueError, r"lr\[1\]")
    _refused(ws, lambda: fastpenalty.prox_many_(ws, [0.1, 0.1, 0.1], 0.5), ValueError, "3 entries")
    _refused(ws, lambda: fastpenalty.prox_many_(ws, 0.1, [0.5, True]), TypeError, r"l1\[1\]")
    _refused(ws, lambda: fastpenalty.prox_many_(ws, 1e200, 0.0, 1e200), ValueError, r"2\*lr\*l2")


def test_bad_arrays_are_refused_before_any_write(weights):
    good = weights(33, np.float32)
    read_only = weights(5, np.float32)
    read_only.flags.writeable = False
    strided = weights((4, 6), np.float64)[:, ::2]
    for bad, error, match in ((read_only, ValueError, r"ws\[1\] is read-only"),
                              (strided, ValueError, r"ws\[1\] must be C-contiguous"),
                              (np.arange(5), TypeError, r"ws\[1\] has dtype int64"),
                              ([1.0, 2.0], TypeError, r"ws\[1\] must be a NumPy array"),
                              (np.ma.masked_array(good.copy()), TypeError, "masked")):
        arrays = [good] + ([bad] if isinstance(bad, np.ndarray) else [])
        _refused(arrays, lambda: fastpenalty.prox_many_([good, bad], 0.1, 0.5), error, match)


def test_overlapping_arrays_are_refused(weights):
    base = weights(40, np.float32)
    _refused([base], lambda: fastpenalty.prox_many_([base[:30], base[20:]], 0.1, 0.5),
             ValueError, r"ws\[0\] and ws\[1\] share memory")
    _refused([base], lambda: fastpenalty.prox_many_([base, base], 0.1, 0.5), ValueError,
             "share memory")
    # adjacent, disjoint halves are fine
    fastpenalty.prox_many_([base[:20], base[20:]], 0.1, 0.5)


def test_check_finite_names_the_array_and_writes_nothing(weights):
    ws = [weights(33, np.float32), weights(17, np.float64)]
    ws[1][4] = np.inf
    _refused(ws, lambda: fastpenalty.prox_many_(ws, 0.1, 0.5, check_finite=True), ValueError,
             r"ws\[1\] contains NaN or Inf")
    ws[1][4] = np.nan
    _refused(ws, lambda: fastpenalty.prox_many_(ws, 0.1, 0.0, 0.0, check_finite=True),
             ValueError, r"ws\[1\]")


# -------------------------------------------------------------------------------------- DLPack

class _Exported:
    """A foreign array: neither NumPy nor torch, only the DLPack protocol."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def test_dlpack_arrays_are_updated_through_a_view(weights):
    a = weights(31, np.float32)
    oracle = a.copy()
    expected = reference.prox_(oracle, 0.1, 0.5, 0.2)
    value, zeros = fastpenalty.prox_many_([_Exported(a)], 0.1, 0.5, 0.2)
    assert zeros == expected[1] and np.count_nonzero(a == 0) == zeros
    np.testing.assert_allclose(a, oracle, rtol=3e-7, atol=1e-45)


def test_immutable_jax_arrays_are_refused():
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.ones(5, dtype=jnp.float32)
    with pytest.raises(ValueError, match="immutable"):
        fastpenalty.prox_(x, 0.1, 0.5)
    assert bool((x == 1).all())
