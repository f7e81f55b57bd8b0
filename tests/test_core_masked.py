"""NumPy masked arrays are refused with a TypeError (np.asarray would drop the mask and the
kernels would sum the masked-out values), before anything is written."""
import numpy as np
import pytest

import fastpenalty


def masked(dtype=np.float32):
    return np.ma.masked_array(np.array([1.0, -2.0, 3.0], dtype), mask=[False, True, False])


CALLS = {
    "l1": lambda m: fastpenalty.l1(m, 1.0),
    "l2": lambda m: fastpenalty.l2(m, 1.0),
    "l1_l2": lambda m: fastpenalty.l1_l2(m, 1.0, 1.0),
    "grad": lambda m: fastpenalty.grad(m, 1.0, 1.0),
    "value_many": lambda m: fastpenalty.value_many([np.ones(3, np.float32), m], 1.0),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_masked_w_is_a_type_error(call):
    with pytest.raises(TypeError, match="masked array"):
        CALLS[call](masked())


def test_masked_array_without_masked_values_is_refused_too():
    with pytest.raises(TypeError, match="masked array"):
        fastpenalty.l1(np.ma.masked_array(np.ones(4, np.float32)), 1.0)


@pytest.mark.parametrize("which", ["w", "g"])
def test_masked_w_or_g_in_accumulate_leaves_g_untouched(which):
    w, g = np.array([1.0, -2.0, 3.0], np.float32), np.zeros(3, np.float32)
    args = (masked(), g) if which == "w" else (w, masked())
    before = np.array(args[1]).copy()
    with pytest.raises(TypeError, match="masked array"):
        fastpenalty.accumulate_(*args, 1.0, 1.0)
    assert np.array_equal(np.asarray(args[1]), before)


def test_masked_in_a_list_leaves_every_g_untouched():
    ws = [np.ones(5, np.float32), masked()]
    gs = [np.zeros(5, np.float32), np.zeros(3, np.float32)]
    with pytest.raises(TypeError, match=r"ws\[1\] is a NumPy masked array"):
        fastpenalty.accumulate_many_(ws, gs, 1.0, 1.0)
    assert all(not g.any() for g in gs)


def test_the_suggested_fill_gives_the_unmasked_penalty():
    m = masked()
    assert fastpenalty.l1(m.filled(0), 1.0) == float(np.abs(m).sum()) == 4.0
