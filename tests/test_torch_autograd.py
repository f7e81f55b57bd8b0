"""Autograd through the value ops: backward gives grad(w) in w's dtype, gradcheck in float64,
double backward exact (L2's second derivative is 2 * l2; L1's is 0 almost everywhere, as for
torch.sign), the incoming gradient's sign and NaN handled, and no gradient for factors."""
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

import fastpenalty
from fastpenalty.torch import functional

L1, L2 = 0.013, 0.021


def away_from_zero(*shape, dtype=torch.float64, seed=0):
    """Values with |w| >= 0.1, so finite differences never step across sign's jump at 0."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(*shape, generator=gen, dtype=torch.float64) + 0.1
    signs = torch.randint(0, 2, shape, generator=gen) * 2 - 1
    return (w * signs).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_backward_gives_grad_in_the_weights_dtype(dtype):
    w = away_from_zero(40, 3, dtype=dtype).requires_grad_()
    fastpenalty.l1_l2(w, L1, L2).backward()
    assert w.grad.dtype == dtype
    assert torch.equal(w.grad, fastpenalty.grad(w.detach(), L1, L2))


def test_backward_scales_by_the_incoming_gradient():
    w = away_from_zero(100).requires_grad_()
    expected = fastpenalty.grad(w.detach(), L1, L2)
    for scale in (1.0, -3.0, 0.0, 2.5):
        w.grad = None
        (fastpenalty.l1_l2(w, L1, L2) * scale).backward()
        torch.testing.assert_close(w.grad, expected * scale, rtol=1e-12, atol=0)


def test_nan_incoming_gradient_propagates():
    w = torch.tensor([1.0, -2.0, 0.0], requires_grad=True)
    (fastpenalty.l2(w, 0.5) * float("nan")).backward()
    assert torch.isnan(w.grad).all()


def test_gradcheck_float64():
    w = away_from_zero(7, 5).requires_grad_()
    ws = [away_from_zero(4, seed=1).requires_grad_(), away_from_zero(3, 2, seed=2).requires_grad_()]
    l2_per_tensor = torch.tensor([0.3, 0.05], dtype=torch.float64)
    checks = [
        (lambda x: fastpenalty.l1(x, 0.3), (w,)),
        (lambda x: fastpenalty.l2(x, 0.7), (w,)),
        (lambda x: fastpenalty.l1_l2(x, 0.3, 0.7), (w,)),
        (lambda x: fastpenalty.grad(x, 0.3, 0.7), (w,)),
        (lambda a, b: fastpenalty.value_many([a, b], [0.1, 0.2], l2_per_tensor), tuple(ws)),
    ]
    for fn, inputs in checks:
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)


def test_double_backward_of_l2_is_two_l2():
    w = away_from_zero(6).requires_grad_()
    (g,) = torch.autograd.grad(fastpenalty.l1_l2(w, L1, L2), w, create_graph=True)
    v = torch.randn(6, dtype=torch.float64)
    (hv,) = torch.autograd.grad((g * v).sum(), w)
    torch.testing.assert_close(hv, 2 * L2 * v, rtol=1e-15, atol=0)
    hessian = torch.autograd.functional.hessian(lambda x: fastpenalty.l2(x, 0.25), w.detach())
    torch.testing.assert_close(hessian, 0.5 * torch.eye(6, dtype=torch.float64), rtol=0, atol=0)


def test_double_backward_of_value_many():
    ws = [away_from_zero(5).requires_grad_(), away_from_zero(3, seed=3).requires_grad_()]
    total = fastpenalty.value_many(ws, L1, [0.5, 2.0])
    grads = torch.autograd.grad(total, ws, create_graph=True)
    second = torch.autograd.grad(sum(g.sum() for g in grads), ws)
    torch.testing.assert_close(second[0], torch.full((5,), 1.0, dtype=torch.float64))
    torch.testing.assert_close(second[1], torch.full((3,), 4.0, dtype=torch.float64))


def test_third_order_through_the_incoming_gradient():
    # d/ds of s * grad(w) is grad(w): the scale of the backward op is differentiable too
    w = away_from_zero(4).requires_grad_()
    s = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fastpenalty.l1_l2(w, L1, L2), w, grad_outputs=s, create_graph=True)
    (ds,) = torch.autograd.grad(g.sum(), s)
    torch.testing.assert_close(ds, fastpenalty.grad(w.detach(), L1, L2).sum())


def test_only_weights_that_require_grad_get_one():
    a = away_from_zero(5).requires_grad_()
    b = away_from_zero(4, seed=1)
    c = away_from_zero(3, seed=2).requires_grad_()
    fastpenalty.value_many([a, b, c], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]).backward()
    assert b.grad is None
    torch.testing.assert_close(a.grad, fastpenalty.grad(a.detach(), 0.1, 0.4))
    torch.testing.assert_close(c.grad, fastpenalty.grad(c.detach(), 0.3, 0.6))


def test_factors_that_require_grad_are_refused():
    w = away_from_zero(3).requires_grad_()
    factor = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="not differentiable with respect to their factors"):
        fastpenalty.l2(w, factor)
    with pytest.raises(ValueError, match="not differentiable"):
        functional.value_many([w], factor, 0.0)


def test_grad_of_the_value_of_half_weights_stays_finite():
    w = torch.full((1000,), 60000.0, dtype=torch.float16, requires_grad=True)
    v = fastpenalty.l2(w, 1e-6)
    v.backward()
    assert math.isfinite(v.item()) and w.grad.dtype == torch.float16
    assert torch.isfinite(w.grad).all()


def test_factors_made_in_inference_mode_do_not_leak_into_training():
    # number factors become tensors; one made under inference_mode cannot be saved for backward
    class Dispatcher(TorchFunctionMode):  # forces the custom op route, where factors are tensors
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return func(*args, **(kwargs or {}))

    w = away_from_zero(5)
    with torch.inference_mode(), Dispatcher():
        fastpenalty.l1_l2(w, 0.37, 0.59)
    w.requires_grad_()
    fastpenalty.l1_l2(w, 0.37, 0.59).backward()
    assert torch.equal(w.grad, fastpenalty.grad(w.detach(), 0.37, 0.59))


def test_backward_through_a_multi_tensor_grad_kernel(monkeypatch):
    # value_many's backward makes one core call when the core has grad_many; a stand-in built on
    # the single-tensor kernel drives that route here whether or not this build has it
    from fastpenalty import _core
    from fastpenalty.torch import _cpu

    calls = []

    def grad_many(w_ptrs, out_ptrs, sizes, codes, l1s, l2s):
        calls.append(len(w_ptrs))
        for args in zip(w_ptrs, out_ptrs, sizes, codes, l1s, l2s):
            _core.grad(*args)

    ws = [away_from_zero(6, dtype=torch.float32).requires_grad_(),
          away_from_zero(3, 2, dtype=torch.float16, seed=1).requires_grad_()]
    expected = [fastpenalty.grad(w.detach(), 0.1, [0.2, 0.3][i]) for i, w in enumerate(ws)]
    monkeypatch.setattr(_cpu, "_grad_many", grad_many)
    for scale in (1.0, -2.0):
        for w in ws:
            w.grad = None
        (fastpenalty.value_many(ws, 0.1, [0.2, 0.3]) * scale).backward()
        for w, e in zip(ws, expected):
            assert w.grad.dtype == w.dtype
            torch.testing.assert_close(w.grad, e * scale, rtol=2e-3, atol=0)
    assert calls == [2, 2]


@pytest.mark.parametrize("l1,l2", [(0.1, 0.2), ([0.1, 0.0, 0.3], 0.2), (0.1, [0.2, 0.5, 0.0]),
                                   ([0.1, 0.0, 0.3], [0.2, 0.5, 0.0])])
def test_eager_value_many_matches_the_custom_op(l1, l2):
    # eager CPU calls that autograd records skip the dispatcher (_EagerValueMany): the same
    # value and gradients as the custom op, for the weights that require grad only
    torch.manual_seed(0)
    ws = [torch.randn(5, dtype=torch.float64, requires_grad=True),
          torch.randn(2, 3, dtype=torch.float64),
          torch.randn(4, dtype=torch.float64, requires_grad=True)]
    value = fastpenalty.value_many(ws, l1, l2)
    assert type(value.grad_fn).__name__ == "_EagerValueManyBackward"
    value.backward(torch.tensor(-1.5, dtype=torch.float64))
    l1s = l1 if isinstance(l1, list) else [l1] * 3
    l2s = l2 if isinstance(l2, list) else [l2] * 3
    for w, a, b in zip(ws, l1s, l2s):
        if w.requires_grad:
            torch.testing.assert_close(w.grad, -1.5 * fastpenalty.grad(w.detach(), a, b))
    assert ws[1].grad is None
    assert torch.autograd.gradcheck(lambda x, y: fastpenalty.value_many([x, y], l1s[:2], l2s[:2]),
                                    (ws[0].detach().requires_grad_(),
                                     ws[2].detach().requires_grad_()))
    x = ws[0].detach().requires_grad_()
    (gx,) = torch.autograd.grad(fastpenalty.value_many([x], 0.0, 0.25), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.sum(), x)
    torch.testing.assert_close(ggx, torch.full_like(x, 0.5))  # d/dw of 2 * l2 * w
