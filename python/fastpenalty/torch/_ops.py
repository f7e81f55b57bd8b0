"""The fastpenalty:: custom ops: what torch.compile traces, autograd differentiates and the
dispatcher routes by device.

    value(Tensor w, Tensor l1, Tensor l2, bool check_finite) -> Tensor
    value_many(Tensor[] ws, Tensor l1s, Tensor l2s, bool check_finite) -> Tensor
    grad(Tensor w, Tensor l1, Tensor l2, Tensor? scale, bool check_finite) -> Tensor
    grad_many(Tensor[] ws, Tensor l1s, Tensor l2s, Tensor scale) -> Tensor[]
    accumulate_(Tensor w, Tensor(a!) g, Tensor l1, Tensor l2, bool check_finite) -> Tensor
    accumulate_many_(Tensor[] ws, Tensor(a!)[] gs, Tensor l1s, Tensor l2s, bool check_finite) -> Tensor

Each op has a CPU kernel (the op's body) and a CUDA kernel (register_kernel("cuda")); the
dispatcher picks one by the tensors' device, and the fake kernels serve tracing and meta tensors.
Factors are float64 tensors on the weights' device (one entry, or one per tensor for the
*_many ops), so a compiled graph takes them as inputs: a new factor value is new data, not a new
graph. The value ops are differentiable in w: their backward is grad / grad_many with the
incoming gradient as `scale`, and grad's own backward (2 * l2 * scale, since sign has derivative
0 almost everywhere) makes double backward exact. The in-place ops are not differentiable.
"""
from typing import Optional

import torch
from torch import Tensor

from . import _checks, _cpu, _cuda
from ._outputs import grad_buffer, value_dtype
from ._overlap import require_disjoint

_NO_FACTOR_GRAD = ("penalties are not differentiable with respect to their factors; pass "
                   "factor tensors that do not require grad")


def _factors(ws, l1s, l2s) -> None:
    device = ws[0].device if ws else l1s.device
    _checks.factor_tensor(l1s, "l1", len(ws), device)
    _checks.factor_tensor(l2s, "l2", len(ws), device)


def _names(prefix: str, n: int) -> list:
    return [f"{prefix}[{i}]" for i in range(n)]


# ---------------------------------------------------------------------------------------- value

@torch.library.custom_op("fastpenalty::value", mutates_args=(), device_types="cpu")
def value(w: Tensor, l1: Tensor, l2: Tensor, check_finite: bool) -> Tensor:
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    return _cpu.value(w, l1.item(), l2.item(), check_finite)


@value.register_kernel("cuda")
def _(w, l1, l2, check_finite):
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    return _cuda.value_many([w], l1, l2, check_finite, ["w"]).to(value_dtype((w.dtype,)))


@value.register_fake
def _(w, l1, l2, check_finite):
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    return w.new_empty((), dtype=value_dtype((w.dtype,)))


def _value_setup(ctx, inputs, output):
    w, l1, l2, _ = inputs
    if l1.requires_grad or l2.requires_grad:
        raise ValueError(_NO_FACTOR_GRAD)
    ctx.save_for_backward(w, l1, l2)


def _value_backward(ctx, gout):
    w, l1, l2 = ctx.saved_tensors
    return grad(w, l1, l2, gout, False), None, None, None


value.register_autograd(_value_backward, setup_context=_value_setup)


# ----------------------------------------------------------------------------------- value_many

@torch.library.custom_op("fastpenalty::value_many", mutates_args=(), device_types="cpu")
def value_many(ws: list[Tensor], l1s: Tensor, l2s: Tensor, check_finite: bool) -> Tensor:
    _factors(ws, l1s, l2s)
    if not ws:
        return torch.zeros((), dtype=torch.float32, device=l1s.device)
    # checks the tensors itself, in one pass when they are plain
    return _cpu.value_many(ws, l1s.reshape(-1).tolist(), l2s.reshape(-1).tolist(), check_finite)


@value_many.register_kernel("cuda")
def _(ws, l1s, l2s, check_finite):
    _factors(ws, l1s, l2s)
    if not ws:
        return torch.zeros((), dtype=torch.float32, device=l1s.device)
    _checks.many(ws, "ws")
    dtype = value_dtype([w.dtype for w in ws])
    return _cuda.value_many(ws, l1s, l2s, check_finite, _names("ws", len(ws))).to(dtype)


@value_many.register_fake
def _(ws, l1s, l2s, check_finite):
    _checks.many(ws, "ws")
    _factors(ws, l1s, l2s)
    device = ws[0].device if ws else l1s.device
    return torch.empty((), dtype=value_dtype([w.dtype for w in ws]), device=device)


def _value_many_setup(ctx, inputs, output):
    ws, l1s, l2s, _ = inputs
    if l1s.requires_grad or l2s.requires_grad:
        raise ValueError(_NO_FACTOR_GRAD)
    ctx.save_for_backward(l1s, l2s, *ws)


def _pick(factors: Tensor, chosen: list) -> Tensor:
    """The factors of the chosen tensors, without a host-to-device copy of an index."""
    if factors.numel() == 1:
        return factors
    entries = factors.reshape(-1).unbind(0)
    return torch.stack([entries[i] for i in chosen])


def _value_many_backward(ctx, gout):
    l1s, l2s, *ws = ctx.saved_tensors
    chosen = [i for i, need in enumerate(ctx.needs_input_grad[0]) if need]
    grads = [None] * len(ws)
    if len(chosen) == len(ws):
        grads = grad_many(ws, l1s, l2s, gout)
    elif chosen:
        picked = grad_many([ws[i] for i in chosen], _pick(l1s, chosen), _pick(l2s, chosen), gout)
        for i, g in zip(chosen, picked):
            grads[i] = g
    return grads, None, None, None


value_many.register_autograd(_value_many_backward, setup_context=_value_many_setup)


# ----------------------------------------------------------------------------------------- grad

@torch.library.custom_op("fastpenalty::grad", mutates_args=(), device_types="cpu")
def grad(w: Tensor, l1: Tensor, l2: Tensor, scale: Optional[Tensor], check_finite: bool) -> Tensor:
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    if check_finite:
        _cpu.require_finite([w], ["w"])
    return _cpu.grad(w, _checks.factor_value(l1.item(), "l1"),
                     _checks.factor_value(l2.item(), "l2"),
                     1.0 if scale is None else scale.item())


@grad.register_kernel("cuda")
def _(w, l1, l2, scale, check_finite):
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    if check_finite:
        _cuda.require_finite([w], ["w"])
    return _cuda.grad(w, l1, l2, scale)


@grad.register_fake
def _(w, l1, l2, scale, check_finite):
    _checks.weight(w, "w")
    _factors([w], l1, l2)
    return grad_buffer(w)


def _grad_setup(ctx, inputs, output):
    w, l1, l2, scale, _ = inputs
    if l1.requires_grad or l2.requires_grad:
        raise ValueError(_NO_FACTOR_GRAD)
    ctx.save_for_backward(w, l1, l2, scale)


def _grad_backward(ctx, gout):
    """d grad(w) / dw = 2 * l2 (the sign term is flat almost everywhere, as for torch.sign)."""
    w, l1, l2, scale = ctx.saved_tensors
    slope = 2.0 * l2.reshape(())
    if scale is not None:
        slope = slope * scale.reshape(())
    gw = (gout * slope).to(w.dtype) if ctx.needs_input_grad[0] else None
    gscale = None
    if scale is not None and ctx.needs_input_grad[3]:
        unscaled = grad(w, l1, l2, None, False)
        gscale = (gout.to(scale.dtype) * unscaled.to(scale.dtype)).sum().reshape(scale.shape)
    return gw, None, None, gscale, None


grad.register_autograd(_grad_backward, setup_context=_grad_setup)


# ------------------------------------------------------------------------------------ grad_many

@torch.library.custom_op("fastpenalty::grad_many", mutates_args=(), device_types="cpu")
def grad_many(ws: list[Tensor], l1s: Tensor, l2s: Tensor, scale: Tensor) -> list[Tensor]:
    """scale * grad(ws[i]) for every i: the backward of value_many."""
    _checks.many(ws, "ws")
    _factors(ws, l1s, l2s)
    return _cpu.grad_many(ws, _checks.factor_values(l1s.reshape(-1).tolist(), "l1"),
                          _checks.factor_values(l2s.reshape(-1).tolist(), "l2"), scale.item())


@grad_many.register_kernel("cuda")
def _(ws, l1s, l2s, scale):
    _checks.many(ws, "ws")
    _factors(ws, l1s, l2s)
    return _cuda.grad_many(ws, l1s, l2s, scale) if ws else []


@grad_many.register_fake
def _(ws, l1s, l2s, scale):
    _checks.many(ws, "ws")
    _factors(ws, l1s, l2s)
    return [grad_buffer(w) for w in ws]


def _grad_many_setup(ctx, inputs, output):
    ws, l1s, l2s, scale = inputs
    if l1s.requires_grad or l2s.requires_grad:
        raise ValueError(_NO_FACTOR_GRAD)
    ctx.save_for_backward(l1s, l2s, scale, *ws)


def _grad_many_backward(ctx, gouts):
    l1s, l2s, scale, *ws = ctx.saved_tensors
    slopes = (2.0 * l2s.reshape(-1)) * scale.reshape(())
    one = slopes.numel() == 1
    needs_w = ctx.needs_input_grad[0]
    gws = [(go * slopes[0 if one else i]).to(w.dtype) if go is not None and needs_w[i] else None
           for i, (w, go) in enumerate(zip(ws, gouts))]
    gscale = None
    if ctx.needs_input_grad[3]:
        unscaled = grad_many(ws, l1s, l2s, torch.ones_like(scale))
        gscale = sum((go.to(scale.dtype) * u.to(scale.dtype)).sum()
                     for go, u in zip(gouts, unscaled) if go is not None)
        gscale = torch.as_tensor(gscale, dtype=scale.dtype, device=scale.device).reshape(scale.shape)
    return gws, None, None, gscale


grad_many.register_autograd(_grad_many_backward, setup_context=_grad_many_setup)


# ---------------------------------------------------------------------------------- accumulate_

@torch.library.custom_op("fastpenalty::accumulate_", mutates_args=("g",), device_types="cpu")
def accumulate_(w: Tensor, g: Tensor, l1: Tensor, l2: Tensor, check_finite: bool) -> Tensor:
    _checks.target(w, g, "w", "g")
    _factors([w], l1, l2)
    require_disjoint([w], [g], single=True)
    return _cpu.accumulate(w, g, l1.item(), l2.item(), check_finite)


@accumulate_.register_kernel("cuda")
def _(w, g, l1, l2, check_finite):
    _checks.target(w, g, "w", "g")
    _factors([w], l1, l2)
    require_disjoint([w], [g], single=True)
    return _cuda.accumulate_many([w], [g], l1, l2, check_finite, ["w"]).to(value_dtype((w.dtype,)))


@accumulate_.register_fake
def _(w, g, l1, l2, check_finite):
    _checks.target(w, g, "w", "g")
    _factors([w], l1, l2)
    return w.new_empty((), dtype=value_dtype((w.dtype,)))


# ----------------------------------------------------------------------------- accumulate_many_

@torch.library.custom_op("fastpenalty::accumulate_many_", mutates_args=("gs",), device_types="cpu")
def accumulate_many_(ws: list[Tensor], gs: list[Tensor], l1s: Tensor, l2s: Tensor,
                     check_finite: bool) -> Tensor:
    _factors(ws, l1s, l2s)
    if not ws:
        _checks.targets(ws, gs)
        return torch.zeros((), dtype=torch.float32, device=l1s.device)
    # checks the tensors and their memory itself, in one pass when plain
    return _cpu.accumulate_many(ws, gs, l1s.reshape(-1).tolist(), l2s.reshape(-1).tolist(),
                                check_finite)


@accumulate_many_.register_kernel("cuda")
def _(ws, gs, l1s, l2s, check_finite):
    _factors(ws, l1s, l2s)
    _checks.targets(ws, gs)
    if not ws:
        return torch.zeros((), dtype=torch.float32, device=l1s.device)
    require_disjoint(ws, gs, single=False)
    dtype = value_dtype([w.dtype for w in ws])
    return _cuda.accumulate_many(ws, gs, l1s, l2s, check_finite, _names("ws", len(ws))).to(dtype)


@accumulate_many_.register_fake
def _(ws, gs, l1s, l2s, check_finite):
    _checks.targets(ws, gs)
    _factors(ws, l1s, l2s)
    device = ws[0].device if ws else l1s.device
    return torch.empty((), dtype=value_dtype([w.dtype for w in ws]), device=device)
