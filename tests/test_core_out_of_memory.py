"""FP_ERR_OUT_OF_MEMORY through the experimental hook (fp_experimental_fail_next_allocations, as
_core.fail_next_allocations): the chunk-table allocation fails after the argument checks, the call
raises MemoryError naming it, nothing is written, and the next call works."""
import numpy as np
import pytest

import fastpenalty
import fastpenalty.reference
from fastpenalty import _core


@pytest.fixture(autouse=True)
def no_pending_failure():
    yield
    _core.fail_next_allocations(0)


def arrays(n=1000, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(n) - 0.5).astype(dtype), (rng.random(n) - 0.5).astype(dtype)


def failing_once(fn, gs):
    """fn() with the next allocation failing: MemoryError, every g byte unchanged."""
    before = [g.tobytes() for g in gs]
    _core.fail_next_allocations(1)
    with pytest.raises(MemoryError, match="out of memory for the chunk table"):
        fn()
    assert [g.tobytes() for g in gs] == before, "a failed call wrote into g"


@pytest.mark.parametrize("n", [5, 20000, 300000])
def test_core_calls_raise_memory_error_write_nothing_and_recover(n):
    w, g = arrays(n)
    out = np.full_like(w, 7.0)
    p = w.ctypes.data
    code = 0
    failing_once(lambda: _core.accumulate(p, g.ctypes.data, n, code, 0.1, 0.2), [g])
    failing_once(lambda: _core.accumulate_many([p], [g.ctypes.data], [n], [code], [0.1], [0.2]), [g])
    failing_once(lambda: _core.grad_many([p], [out.ctypes.data], [n], [code], [0.1], [0.2]), [out])
    failing_once(lambda: _core.value(p, n, code, 0.1, 0.2), [])
    failing_once(lambda: _core.sums_many([p], [n], [code]), [])

    expected_g = g + (0.1 * np.sign(w) + np.float32(0.4) * w)
    v = _core.accumulate(p, g.ctypes.data, n, code, 0.1, 0.2)
    assert v == pytest.approx(0.1 * np.abs(w.astype(np.float64)).sum() + 0.2 * (w.astype(np.float64) ** 2).sum(),
                              rel=1e-5)
    np.testing.assert_allclose(g, expected_g, rtol=1e-6, atol=1e-7)


def test_one_pending_failure_is_used_by_one_call_only():
    w, g = arrays()
    _core.fail_next_allocations(1)
    with pytest.raises(MemoryError):
        _core.value(w.ctypes.data, w.size, 0, 0.1, 0.2)
    assert _core.value(w.ctypes.data, w.size, 0, 0.1, 0.2) > 0


def test_argument_errors_come_before_the_allocation():
    w, g = arrays()
    _core.fail_next_allocations(1)
    with pytest.raises(ValueError):
        _core.value(w.ctypes.data, w.size, 0, -1.0, 0.2)
    with pytest.raises(MemoryError):  # the pending failure was not used by the refused call
        _core.value(w.ctypes.data, w.size, 0, 0.1, 0.2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("check_finite", [False, True])
def test_public_numpy_api_raises_memory_error_writes_nothing_and_recovers(dtype, check_finite):
    w, g = arrays(5000, dtype)
    ws, gs = [w, w[:7].copy()], [g, g[:7].copy()]
    failing_once(lambda: fastpenalty.accumulate_(w, g, 0.1, 0.2, check_finite=check_finite), [g])
    failing_once(lambda: fastpenalty.accumulate_many_(ws, gs, 0.1, 0.2, check_finite=check_finite), gs)
    failing_once(lambda: fastpenalty.l1_l2(w, 0.1, 0.2, check_finite=check_finite), [])
    failing_once(lambda: fastpenalty.value_many(ws, 0.1, 0.2, check_finite=check_finite), [])
    failing_once(lambda: fastpenalty.grad(w, 0.1, 0.2, check_finite=check_finite), [])

    g_expected = g.copy()
    expected = fastpenalty.reference.accumulate_(w, g_expected, 0.1, 0.2)
    got = fastpenalty.accumulate_(w, g, 0.1, 0.2, check_finite=check_finite)
    assert got == pytest.approx(expected, rel=1e-3)
    np.testing.assert_allclose(g.astype(np.float64), g_expected.astype(np.float64), rtol=2e-3, atol=1e-6)


@pytest.mark.parametrize("n", [5, 300000])
def test_prox_raises_memory_error_writes_nothing_and_recovers(n):
    """The proximal step shares the chunk table (csrc/cpu/chunks.h): its allocation failure is a
    MemoryError with w untouched, through the core binding and the public NumPy function."""
    w, _ = arrays(n)
    failing_once(lambda: _core.prox_many([w.ctypes.data], [n], [0], [0.1], [0.5], [0.2]), [w])
    failing_once(lambda: _core.prox(w.ctypes.data, n, 0, 0.1, 0.5, 0.2), [w])
    failing_once(lambda: fastpenalty.prox_many_([w], 0.1, 0.5, 0.2), [w])
    expected = w.copy()
    fastpenalty.reference.prox_(expected, 0.1, 0.5, 0.2)
    fastpenalty.prox_many_([w], 0.1, 0.5, 0.2)
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-7)
