"""The C++ plan of the eager CPU fast path (csrc/python/torch_plan.h, fastpenalty.torch._plan):
a list seen before is recognised by identity plus a re-read of what can change on the same
objects, and every change a training loop (or a user) can make between calls sends the tensor
through the full check again, or the call through the Python path: results still match the
reference and bad input is still refused, naming the tensor, before any write.

`plan.was_served` says whether the last call was answered by the plan, `plan.full_checks` how
many tensor objects it checked in full (0: all recognised). Every test runs twice: with the
direct reads of checked tensors through libtorch's C shim, and with every read through torch's
Python bindings."""
import gc
import weakref

import numpy as np
import pytest
import torch
from torch import nn

import fastpenalty
from fastpenalty import reference
from fastpenalty.torch import Penalty, functional

L1, L2 = 0.01, 0.5
PAIRS, VALUES = functional._PAIRS, functional._VALUES


def expect_accumulated(ws, gs, before):
    for w, g, b in zip(ws, gs, before):
        np.testing.assert_allclose(g.numpy(), b + reference.grad(w.detach().numpy(), L1, L2),
                                   rtol=1e-6)


def accumulate(ws, gs):
    before = [g.numpy().copy() for g in gs]
    value = fastpenalty.accumulate_many_(ws, gs, L1, L2)
    expect_accumulated(ws, gs, before)
    np.testing.assert_allclose(value.item(), reference.value_many(
        [w.detach().numpy() for w in ws], L1, L2), rtol=1e-6)


def call_twice(ws, gs, plain=True):
    """The second call of the same lists is served from the plan with no full check."""
    for _ in range(2):
        accumulate(ws, gs)
    assert PAIRS.was_served == plain
    if plain:
        assert PAIRS.full_checks == 0


def fresh(n=3, size=5, dtype=torch.float32):
    torch.manual_seed(0)
    return ([torch.randn(size, dtype=dtype) for _ in range(n)],
            [torch.zeros(size, dtype=dtype) for _ in range(n)])


def unchanged_on_error(gs, call, error, match):
    before = [g.clone() for g in gs]
    with pytest.raises(error, match=match):
        call()
    assert all(torch.equal(g, b) for g, b in zip(gs, before))


@pytest.fixture(autouse=True, params=["direct", "bindings"])
def reads(request):
    from fastpenalty import _core
    from fastpenalty.torch import _plan
    if request.param == "bindings":
        assert not _core.register_torch_direct("", [])  # turns direct reads off
    yield request.param
    assert _plan._register_direct()


def test_plan_is_registered(reads):
    from fastpenalty import _core
    from fastpenalty.torch import _plan
    assert _plan.READY
    # torch 2.13 exports the shim and keeps each tensor's at::Tensor right after its header
    assert _core.torch_direct_reads() == (reads == "direct")


def test_direct_reads_refuse_probes_that_disagree():
    from fastpenalty import _core
    from fastpenalty.torch import _plan
    lib = _plan.glob.glob(_plan.os.path.join(_plan.os.path.dirname(torch.__file__), "lib",
                                             "libtorch_cpu.*"))[0]
    fake = torch.Tensor._make_subclass(torch.Tensor, torch.ones(3))  # a plain tensor: agrees
    assert _core.register_torch_direct(lib, [fake])
    assert not _core.register_torch_direct(lib, [torch.ones(2), object()])  # not a tensor
    assert not _core.torch_direct_reads()


# ------------------------------------------------------------------ same objects, changed state

def test_a_new_address_is_checked_again():
    ws, gs = fresh()
    call_twice(ws, gs)
    ws[1].data = torch.randn(5)
    accumulate(ws, gs)
    assert PAIRS.was_served and PAIRS.full_checks == 1


def test_set_to_new_storage_is_checked_again():
    ws, gs = fresh()
    call_twice(ws, gs)
    ws[2].set_(torch.randn(5))
    accumulate(ws, gs)
    assert PAIRS.was_served and PAIRS.full_checks == 1


def test_fewer_elements_at_the_same_address_are_refused():
    ws, gs = fresh()
    call_twice(ws, gs)
    ws[1].data = ws[1].data[:3]  # same address, fewer elements: g no longer matches
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), ValueError,
                       r"gs\[1\] has shape \(5,\)")
    assert not PAIRS.was_served


def test_a_new_dtype_at_the_same_address_is_refused():
    ws, gs = fresh()
    call_twice(ws, gs)
    ws[1].data = ws[1].data.view(torch.int32)  # same address and count
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), TypeError,
                       r"ws\[1\] has dtype torch.int32")


def test_a_transposed_tensor_goes_the_python_way():
    ws, gs = fresh()
    ws[0], gs[0] = torch.randn(4, 6), torch.zeros(4, 6)
    call_twice(ws, gs)
    ws[0].t_()  # same address, count and dtype; memory order no longer matches g's
    gs[0] = torch.zeros(6, 4)
    call_twice(ws, gs, plain=False)


def test_a_g_that_now_requires_grad_is_refused():
    ws, gs = fresh()
    call_twice(ws, gs)
    gs[2].requires_grad_(True)
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), ValueError,
                       r"gs\[2\] requires grad")


def test_a_shape_mismatch_of_a_new_g_is_refused():
    ws, gs = fresh()
    ws[0], gs[0] = torch.randn(2, 3), torch.zeros(2, 3)
    call_twice(ws, gs)
    gs[0] = torch.zeros(3, 2)  # same count, dtype and contiguity
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), ValueError,
                       r"gs\[0\] has shape \(3, 2\)")
    # the refused g is not remembered as checked
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), ValueError,
                       r"gs\[0\] has shape \(3, 2\)")


def test_an_overlap_is_refused_by_name():
    ws, gs = fresh()
    call_twice(ws, gs)
    gs[1] = ws[0]
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2), ValueError,
                       "share memory")


@pytest.mark.parametrize("which", ["w", "g"])
def test_a_negative_bit_view_is_not_taken(which):
    ws, gs = fresh()
    call_twice(ws, gs)
    if which == "w":
        ws[1] = torch._neg_view(torch.randn(5))
    else:
        gs[1] = torch._neg_view(torch.zeros(5))
    expected = [g.clone() + torch.from_numpy(reference.grad(w.resolve_neg().numpy(), L1, L2))
                for w, g in zip(ws, gs)]
    fastpenalty.accumulate_many_(ws, gs, L1, L2)
    assert not PAIRS.was_served
    for g, e in zip(gs, expected):
        torch.testing.assert_close(g, e)


def test_check_finite_names_the_tensor_and_writes_nothing():
    ws, gs = fresh()
    fastpenalty.accumulate_many_(ws, gs, L1, L2, check_finite=True)
    assert PAIRS.was_served
    ws[2][3] = float("nan")
    unchanged_on_error(gs, lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2, check_finite=True),
                       ValueError, r"ws\[2\] contains NaN")
    big = [torch.full((5,), 3e38)]  # every element finite, the float32 value is not
    unchanged_on_error(big, lambda: fastpenalty.value_many(big, 0.0, 1.0, check_finite=True),
                       ValueError, "not finite")


def test_value_many_plan_notices_requires_grad():
    ws, _ = fresh()
    for _ in range(2):
        assert not fastpenalty.value_many(ws, L1, L2).requires_grad
    assert VALUES.was_served and VALUES.full_checks == 0
    ws[0].requires_grad_(True)
    value = fastpenalty.value_many(ws, L1, L2)
    assert VALUES.was_served and value.requires_grad
    value.backward()
    np.testing.assert_allclose(ws[0].grad.numpy(), reference.grad(ws[0].detach().numpy(), L1, L2),
                               rtol=1e-6)


def test_factor_tensors_are_read_each_call():
    ws, _ = fresh()
    l1s = torch.tensor([0.1, 0.0, 0.3], dtype=torch.float64)
    for scale in (1.0, 2.0):
        l1s.mul_(scale)
        got = fastpenalty.value_many(ws, l1s, 0.0)
        assert VALUES.was_served
        np.testing.assert_allclose(got.item(), sum(
            f * float(w.abs().sum()) for f, w in zip(l1s.tolist(), ws)), rtol=1e-6)
    l1s[1] = -1.0
    with pytest.raises(ValueError, match=r"l1\[1\] must be finite and >= 0"):
        fastpenalty.value_many(ws, l1s, 0.0)


def test_the_plan_holds_no_tensor_alive():
    ws, gs = fresh()
    call_twice(ws, gs)
    ref = weakref.ref(gs[0])
    del gs
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------- Penalty.accumulate_

def model_and_penalty():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3))
    penalty = Penalty(model, l1=L1, l2=L2)
    return model, penalty


def expected_grads(penalty, before):
    return [b + torch.from_numpy(reference.grad(p.detach().numpy(), L1, L2))
            for p, b in zip(penalty.parameters, before)]


def step(penalty, *, set_to_none: bool):
    """One accumulate_ after gradients that are new objects (set_to_none) or the same ones."""
    params = penalty.parameters
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = torch.randn_like(p)
    before = [p.grad.clone() for p in params]
    value = penalty.accumulate_()
    for p, e in zip(params, expected_grads(penalty, before)):
        torch.testing.assert_close(p.grad, e)
    np.testing.assert_allclose(value.item(), reference.value_many(
        [p.detach().numpy() for p in params], L1, L2), rtol=1e-6)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_penalty_reads_grads_in_the_plan(set_to_none):
    _, penalty = model_and_penalty()
    for _ in range(3):
        step(penalty, set_to_none=set_to_none)
    plan = penalty._grad_plan
    assert plan.was_served
    assert plan.full_checks == (2 if set_to_none else 0)  # only the new grads


def test_penalty_with_a_missing_grad_creates_it():
    model, penalty = model_and_penalty()
    step(penalty, set_to_none=True)
    model[0].weight.grad = None
    value = penalty.accumulate_()
    assert not penalty._grad_plan.was_served  # the Python path creates the missing grad
    torch.testing.assert_close(model[0].weight.grad, fastpenalty.grad(
        model[0].weight.detach(), L1, L2))
    again = penalty.accumulate_()
    assert penalty._grad_plan.was_served and again.item() == value.item()


def test_penalty_with_a_non_contiguous_grad():
    model, penalty = model_and_penalty()
    step(penalty, set_to_none=True)
    w = model[0].weight
    w.grad = torch.randn(w.shape[1], w.shape[0]).t()  # right shape, transposed memory
    before = w.grad.clone()
    penalty.accumulate_()
    assert not penalty._grad_plan.was_served
    torch.testing.assert_close(w.grad, before + fastpenalty.grad(w.detach(), L1, L2))


def test_penalty_after_p_data_and_dtype_changes():
    model, penalty = model_and_penalty()
    step(penalty, set_to_none=False)
    model[1].weight.data = torch.randn(3, 6)
    step(penalty, set_to_none=True)
    assert penalty._grad_plan.was_served and penalty._grad_plan.full_checks == 3
    model.double()
    for p in penalty.parameters:
        p.grad = None
    value = penalty.accumulate_()
    value = penalty.accumulate_()  # the grads exist now: served, in float64
    assert penalty._grad_plan.was_served and value.dtype == torch.float64


def test_penalty_with_frozen_parameters_matches_the_python_path():
    model, penalty = model_and_penalty()
    step(penalty, set_to_none=False)
    model[0].weight.requires_grad_(False)
    frozen_grad = model[0].weight.grad.clone()
    trained_before = model[1].weight.grad.clone()
    value = penalty.accumulate_()
    assert penalty._grad_plan.was_served
    torch.testing.assert_close(model[0].weight.grad, frozen_grad)  # untouched
    torch.testing.assert_close(model[1].weight.grad, trained_before + fastpenalty.grad(
        model[1].weight.detach(), L1, L2))
    # the Python path's rounding: each part to its result dtype, then the sum
    parts = [fastpenalty.value_many([p.detach()], L1, L2) for p in penalty.parameters]
    expected = (parts[0].double() + parts[1].double()).float()
    assert value.item() == expected.item()
    model[0].weight.requires_grad_(True)
    step(penalty, set_to_none=False)
    assert penalty._grad_plan.was_served


def test_a_replaced_parameter_is_penalized():
    model, penalty = model_and_penalty()
    step(penalty, set_to_none=False)
    model[1].weight = nn.Parameter(torch.full((3, 6), 2.0))
    step(penalty, set_to_none=True)
    assert penalty.parameters[1] is model[1].weight


def test_two_penalties_keep_their_own_plans():
    _, first = model_and_penalty()
    _, second = model_and_penalty()
    for _ in range(2):
        for penalty in (first, second):
            step(penalty, set_to_none=False)
            penalty()
    for penalty in (first, second):
        assert penalty._grad_plan.full_checks == 0 and penalty._value_plan.full_checks == 0


def test_penalty_factors_changed_in_place():
    model, penalty = model_and_penalty()
    penalty()
    penalty.set_factors(l1=0.0, l2=2.0)
    expected = sum(2.0 * float((p.detach() ** 2).sum()) for p in penalty.parameters)
    np.testing.assert_allclose(penalty().item(), expected, rtol=1e-6)
    assert penalty._value_plan.was_served


def test_recorded_value_refuses_a_weight_modified_before_backward():
    ws = [torch.randn(5, requires_grad=True) for _ in range(3)]
    value = fastpenalty.value_many(ws, L1, L2)
    assert VALUES.was_served
    with torch.no_grad():
        ws[1].mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        value.backward()
    value = fastpenalty.value_many(ws, L1, L2)
    value.backward()
    for w in ws:
        np.testing.assert_allclose(w.grad.numpy(), reference.grad(w.detach().numpy(), L1, L2),
                                   rtol=1e-6)


@pytest.mark.parametrize("kind", ["tensor", "list", "number"])
def test_backward_uses_the_factors_of_the_forward(kind):
    """The plan records its node with the factors as given; changing them in place (or the list
    holding them) between the forward and the backward must not change the gradient."""
    torch.manual_seed(1)
    ws = [torch.randn(n, requires_grad=True) for n in (3, 17)]
    l2 = {"tensor": torch.tensor([0.5, 0.25], dtype=torch.float64), "list": [0.5, 0.25],
          "number": 0.5}[kind]
    total = functional.value_many(ws, 0.0, l2)
    assert VALUES.was_served
    if kind == "tensor":
        l2.mul_(8.0)
    elif kind == "list":
        l2[:] = [4.0, 2.0]
    total.backward()
    factors = [0.5, 0.25] if kind != "number" else [0.5, 0.5]
    for w, f in zip(ws, factors):
        np.testing.assert_allclose(w.grad.numpy(), reference.grad(w.detach().numpy(), 0.0, f),
                                   rtol=1e-6)
