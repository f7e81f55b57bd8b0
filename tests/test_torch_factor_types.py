"""Factors accept exactly the same set of types whether the weights are NumPy arrays or torch
tensors, through every public function: real numbers, NumPy real scalars and 0-d arrays,
0-dim real tensors. bool is refused in every form (True, np.bool_, np.array(True), a bool
tensor), as are complex numbers and strings; refused calls leave g untouched."""
import numpy as np
import pytest
import torch

import fastpenalty
from fastpenalty import reference

ACCEPTED = [0.5, 2, np.float32(0.5), np.float64(0.25), np.int64(3), np.array(0.5),
            np.array(1, dtype=np.int32), torch.tensor(0.5), torch.tensor(2)]
REFUSED = [True, False, np.bool_(True), np.array(True), torch.tensor(True), 1j,
           np.complex128(1.0), torch.tensor(1j), "0.1", b"0.1"]


def arrays(kind):
    w = np.array([-2.0, 0.0, 1.5, 3.0])
    if kind == "numpy":
        return w, np.zeros_like(w)
    return torch.from_numpy(w.copy()), torch.zeros(4, dtype=torch.float64)


def calls(w, g, f):
    """Every public function, each with f as its one factor."""
    return {
        "l1": lambda: fastpenalty.l1(w, f),
        "l2": lambda: fastpenalty.l2(w, f),
        "l1_l2": lambda: fastpenalty.l1_l2(w, 0.0, f),
        "grad": lambda: fastpenalty.grad(w, f, 0.0),
        "accumulate_": lambda: fastpenalty.accumulate_(w, g, f, 0.0),
        "value_many": lambda: fastpenalty.value_many([w], f, 0.0),
        "value_many per tensor": lambda: fastpenalty.value_many([w, w], [f, 0.1], 0.0),
        "accumulate_many_": lambda: fastpenalty.accumulate_many_([w], [g], 0.0, f),
    }


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("factor", ACCEPTED, ids=repr)
def test_accepted_factor_types_give_the_reference(kind, factor):
    w, g = arrays(kind)
    f = float(factor)
    expected_value = reference.l1(np.asarray(w), f)
    results = calls(w, g, factor)
    assert float(results["l1"]()) == pytest.approx(expected_value, rel=1e-12)
    assert float(results["value_many"]()) == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(np.asarray(results["grad"]()), reference.grad(np.asarray(w), f, 0.0))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("factor", REFUSED, ids=repr)
def test_refused_factor_types_are_type_errors_everywhere(kind, factor):
    w, g = arrays(kind)
    for name, call in calls(w, g, factor).items():
        with pytest.raises(TypeError, match="must be a real number"):
            call()
        assert not np.asarray(g).any(), f"{name} wrote g before refusing the factor"
