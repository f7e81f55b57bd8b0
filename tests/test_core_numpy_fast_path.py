"""The NumPy fast path (_core.numpy_value_many / numpy_accumulate_many): plain arrays and plain
factors give the bits of the Python path; everything else is declined (None) and handled by the
Python path, with its errors, before anything is written."""
import numpy as np
import pytest
from _tolerances import BFLOAT16

import fastpenalty
from fastpenalty import _core, _numpy_api

DTYPES = [np.float32, np.float64, np.float16, BFLOAT16]


def mixed_arrays(weights):
    return [weights(n, dt) for n, dt in zip((0, 1, 7, 33, 3 * _core.CHUNK + 5, 64), DTYPES + DTYPES[:2])]


def python_path_value(ws, l1, l2):
    """The value through the Python path (pointers built in Python), for comparison."""
    return _numpy_api.value_many([np.require(w, requirements=["C", "A"]) for w in ws] + [np.ones(0, np.float32)],
                                 list(l1) + [0.0] if isinstance(l1, list) else l1,
                                 list(l2) + [0.0] if isinstance(l2, list) else l2, check_finite=True)


@pytest.mark.parametrize("l1, l2", [(0.01, 0.02), (0, 3), ([0.01, 0.0, 2.0, 1.0, 0.5, 0.25], 0.02)])
def test_fast_value_equals_the_python_path(isa, weights, l1, l2):
    ws = mixed_arrays(weights)
    fast = _core.numpy_value_many(ws, l1, l2)
    assert fast is not None
    assert fast == fastpenalty.value_many(ws, l1, l2) == python_path_value(ws, l1, l2)


def test_fast_accumulate_equals_the_python_path(isa, weights):
    ws = mixed_arrays(weights)
    gs_fast = [weights(w.shape, w.dtype) for w in ws]
    gs_slow = [g.copy() for g in gs_fast]
    fast = _core.numpy_accumulate_many(ws, gs_fast, 0.01, [0.02] * len(ws))
    slow = _numpy_api.accumulate_many_(ws, gs_slow, 0.01, [0.02] * len(ws), check_finite=True)
    assert fast == slow
    for a, b in zip(gs_fast, gs_slow):
        assert a.tobytes() == b.tobytes()


def test_result_dtype_rule_on_the_fast_path(weights):
    w64 = weights(1001, np.float64)
    v = _core.numpy_value_many([w64], 0.01, 0.02)
    assert v == pytest.approx(fastpenalty.reference.l1_l2(w64, 0.01, 0.02), rel=1e-12)
    assert v != float(np.float32(v))  # fp64 inputs give an fp64 value
    v32 = _core.numpy_value_many([w64, weights(3, np.float32)], 0.01, 0.02)
    assert v32 == float(np.float32(v32))


DECLINED = {
    "masked": lambda: [np.ma.masked_array(np.ones(3, np.float32))],
    "strided": lambda: [np.ones(10, np.float32)[::2]],
    "fortran": lambda: [np.ones((3, 4), np.float32, order="F")],
    "int": lambda: [np.ones(3, np.int32)],
    "complex": lambda: [np.ones(3, np.complex64)],
    "list": lambda: [[1.0, 2.0]],
    "byteswapped": lambda: [np.ones(3, np.dtype(">f4"))],
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_unusual_arrays_are_declined(case):
    assert _core.numpy_value_many(DECLINED[case](), 0.1, 0.1) is None


@pytest.mark.parametrize("l1", [True, np.float64(0.1), np.array(0.1), -1.0, float("nan"), float("inf"), "0.1",
                                [0.1], [0.1, -1.0], (0.1, True), 10**400])
def test_unusual_factors_are_declined(l1):
    assert _core.numpy_value_many([np.ones(3, np.float32), np.ones(2, np.float32)], l1, 0.0) is None


def test_declined_strided_array_still_gives_the_value():
    w = np.arange(20, dtype=np.float32)[::2]
    assert fastpenalty.value_many([w], 1.0, 0.0) == float(np.abs(w).sum())
    assert fastpenalty.l1(w, 1.0) == float(np.abs(w).sum())


@pytest.mark.parametrize("problem", ["read_only", "overlap", "shape", "dtype", "strided_g", "same_g_twice"])
def test_declined_accumulate_raises_the_python_error_and_writes_nothing(problem):
    ws = [np.ones(8, np.float32), np.ones(8, np.float32)]
    gs = [np.zeros(8, np.float32), np.zeros(8, np.float32)]
    if problem == "read_only":
        gs[1].flags.writeable = False
    elif problem == "overlap":
        gs[1] = ws[0]
    elif problem == "shape":
        gs[1] = np.zeros(9, np.float32)
    elif problem == "dtype":
        gs[1] = np.zeros(8, np.float64)
    elif problem == "strided_g":
        gs[1] = np.zeros(16, np.float32)[::2]
    else:
        gs[1] = gs[0]
    before = [g.copy() for g in gs]
    assert _core.numpy_accumulate_many(list(ws), list(gs), 0.1, 0.1) is None
    with pytest.raises(ValueError, match=r"gs\[1\]|overlap"):
        fastpenalty.accumulate_many_(ws, gs, 0.1, 0.1)
    for g, b in zip(gs, before):
        assert np.array_equal(g, b)


def test_bool_factor_keeps_its_type_error():
    with pytest.raises(TypeError):
        fastpenalty.value_many([np.ones(3, np.float32)], True, 0.0)


def test_negative_per_tensor_factor_is_named():
    with pytest.raises(ValueError, match=r"l2\[1\]"):
        fastpenalty.value_many([np.ones(3, np.float32)] * 2, 0.0, [0.1, -0.1])


def test_public_many_functions_take_plain_arrays_without_a_python_pass(monkeypatch):
    """fastpenalty.value_many / accumulate_many_ hand plain ndarrays straight to the C++ fast
    path: the per-array Python routing (_api._backend, a pass over every array) is not reached."""
    from fastpenalty import _api

    def no_pass(*arrays):
        raise AssertionError("per-array Python pass on plain ndarrays")

    rng = np.random.default_rng(3)
    ws = [rng.standard_normal(n).astype(np.float32) for n in (1, 7, 33)]
    gs = [np.zeros_like(w) for w in ws]
    expect_value = fastpenalty.reference.value_many(ws, 0.1, 0.2)
    expect_gs = [fastpenalty.reference.grad(w, 0.1, 0.2) for w in ws]
    monkeypatch.setattr(_api, "_backend", no_pass)
    np.testing.assert_allclose(fastpenalty.value_many(tuple(ws), 0.1, 0.2), expect_value, rtol=1e-6)
    np.testing.assert_allclose(fastpenalty.accumulate_many_(ws, gs, 0.1, 0.2), expect_value, rtol=1e-6)
    for g, e in zip(gs, expect_gs):
        np.testing.assert_allclose(g, e, rtol=1e-6)
    with pytest.raises(AssertionError, match="per-array"):  # anything else still goes through it
        fastpenalty.value_many(ws, 0.1, 0.2, check_finite=True)
