"""The remembered plan of the eager CPU fast path (fastpenalty.torch._plan): a list seen before
is recognised without the full checks, and every change the same tensor objects can undergo
between calls (a new address, element count, dtype or contiguity; a g that now requires grad)
sends the call back through the full checks, so results still match the reference and bad
input is still refused before any write."""
import gc
import weakref

import numpy as np
import pytest
import torch

import fastpenalty
from fastpenalty import reference
from fastpenalty.torch import _cpu

L1, L2 = 0.01, 0.5


def expect_accumulated(ws, gs, before):
    for w, g, b in zip(ws, gs, before):
        np.testing.assert_allclose(g.numpy(), b + reference.grad(w.numpy(), L1, L2), rtol=1e-6)


def call_twice(ws, gs, plain=True):
    """The second call of the same lists is served from the plan (when they are plain)."""
    for _ in range(2):
        before = [g.numpy().copy() for g in gs]
        fastpenalty.accumulate_many_(ws, gs, L1, L2)
        expect_accumulated(ws, gs, before)
    assert (_cpu._pairs_seen.recall(ws + gs) is not None) == plain


def fresh(n=3, size=5, dtype=torch.float32):
    torch.manual_seed(0)
    return ([torch.randn(size, dtype=dtype) for _ in range(n)],
            [torch.zeros(size, dtype=dtype) for _ in range(n)])


@pytest.mark.parametrize("change", ["address", "count", "dtype", "layout"])
def test_a_changed_tensor_is_checked_again(change):
    ws, gs = fresh()
    call_twice(ws, gs)
    if change == "address":
        ws[1].data = torch.randn(5)
    elif change == "count":
        ws[1].data = ws[1].data[:3]  # same address, fewer elements: g no longer matches
        with pytest.raises(ValueError, match=r"gs\[1\] has shape \(5,\)"):
            fastpenalty.accumulate_many_(ws, gs, L1, L2)
        gs[1].data = torch.zeros(3)
    elif change == "dtype":
        ws[1].data = ws[1].data.view(torch.int32)  # same address and count
        with pytest.raises(TypeError, match=r"ws\[1\] has dtype torch.int32"):
            fastpenalty.accumulate_many_(ws, gs, L1, L2)
        ws[1].data = torch.randn(5)
    else:
        ws[0], gs[0] = torch.randn(4, 6), torch.zeros(4, 6)
        call_twice(ws, gs)
        ws[0].t_()  # same address, count and dtype; memory order no longer matches g's
        gs[0] = torch.zeros(6, 4)
    call_twice(ws, gs, plain=change != "layout")
    assert np.isclose(fastpenalty.value_many(ws, L1, L2).item(),
                      reference.value_many([w.numpy() for w in ws], L1, L2), rtol=1e-6)


def test_a_g_that_now_requires_grad_is_refused():
    ws, gs = fresh()
    call_twice(ws, gs)
    gs[2].requires_grad_(True)
    before = [g.clone() for g in gs]
    with pytest.raises(ValueError, match=r"gs\[2\] requires grad"):
        fastpenalty.accumulate_many_(ws, gs, L1, L2)
    assert all(torch.equal(g, b) for g, b in zip(gs, before))


def test_value_many_plan_notices_requires_grad():
    ws, _ = fresh()
    for _ in range(2):
        fastpenalty.value_many(ws, L1, L2)
    ws[0].requires_grad_(True)
    value = fastpenalty.value_many(ws, L1, L2)
    assert value.requires_grad  # through the differentiable op, not the remembered flat lists


def test_the_plan_holds_no_tensor_alive():
    ws, gs = fresh()
    call_twice(ws, gs)
    ref = weakref.ref(gs[0])
    del gs
    gc.collect()
    assert ref() is None
