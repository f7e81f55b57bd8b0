"""check_finite=True behaves the same for NumPy arrays and torch tensors: on the same data the
same functions raise the same ValueError (naming the tensor that holds NaN or Inf; saying so
when the value itself overflows), before anything is written; on finite data it changes
nothing. Without check_finite an overflowing value is inf, never an error."""
import numpy as np
import pytest
import torch
from test_torch_errors import Dispatcher

import fastpenalty

NAN_IN = "contains NaN or Inf"
OVERFLOW = "the penalty value is not finite"

# (data, dtype, l1, l2, what check_finite says: None = nothing)
CASES = {
    "nan": ([1.0, np.nan, 2.0], np.float32, 0.1, 0.1, NAN_IN),
    "inf": ([1.0, -np.inf], np.float64, 0.1, 0.1, NAN_IN),
    "inf with zero factors": ([np.inf, 1.0], np.float32, 0.0, 0.0, NAN_IN),
    "l1 sum overflows": ([3e38, 3e38], np.float32, 1.0, 0.0, OVERFLOW),
    "l2 sum overflows": ([1e30, 1e30], np.float32, 0.0, 1.0, OVERFLOW),
    "half stays finite in fp32": ([60000.0, 60000.0], np.float16, 0.0, 1.0, None),
    "finite": ([-1.5, 0.0, 2.0], np.float64, 0.1, 0.2, None),
}


@pytest.fixture(params=["numpy", "torch", "torch custom op"])
def kind(request):
    if request.param == "torch custom op":
        with Dispatcher():
            yield "torch"
    else:
        yield request.param


def make(kind, data, dtype):
    a = np.array(data, dtype=dtype)
    return a if kind == "numpy" else torch.from_numpy(a)


def value_calls(w, g, l1, l2):
    zeros = (lambda: np.zeros_like(w)) if isinstance(w, np.ndarray) else (lambda: torch.zeros_like(w))
    other, other_g = w[:0], zeros()[:0]  # an empty companion: the culprit is ws[1]
    return {
        "l1_l2": (lambda: fastpenalty.l1_l2(w, l1, l2, check_finite=True), "w"),
        "value_many": (lambda: fastpenalty.value_many([other, w], l1, l2, check_finite=True),
                       r"ws\[1\]"),
        "accumulate_": (lambda: fastpenalty.accumulate_(w, g, l1, l2, check_finite=True), "w"),
        "accumulate_many_": (lambda: fastpenalty.accumulate_many_(
            [other, w], [other_g, g], l1, l2, check_finite=True), r"ws\[1\]"),
    }


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_outcome_for_numpy_and_torch(kind, case):
    data, dtype, l1, l2, says = CASES[case]
    w = make(kind, data, dtype)
    g = make(kind, [0.5] * len(data), dtype)
    for name, (call, culprit) in value_calls(w, g, l1, l2).items():
        before = np.asarray(g).copy()
        if says is None:
            v = float(call())
            assert np.isfinite(v), name
            continue
        match = f"{culprit} {NAN_IN}" if says == NAN_IN else OVERFLOW
        with pytest.raises(ValueError, match=match):
            call()
        np.testing.assert_array_equal(np.asarray(g), before, err_msg=f"{name} wrote g")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_grad_checks_elements_only(kind, case):
    data, dtype, l1, l2, says = CASES[case]
    w = make(kind, data, dtype)
    if says == NAN_IN:
        with pytest.raises(ValueError, match=f"w {NAN_IN}"):
            fastpenalty.grad(w, l1, l2, check_finite=True)
    else:
        fastpenalty.grad(w, l1, l2, check_finite=True)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_overflowing_value_is_inf_without_check_finite(kind):
    w = make(kind, [3e38, 3e38], np.float32)
    assert float(fastpenalty.l1(w, 1.0)) == np.inf
    assert float(fastpenalty.value_many([w], 1.0)) == np.inf
