"""The public penalty functions. NumPy arrays (and array-likes) run on the C++ core directly; torch
tensors go to fastpenalty.torch.functional, which wraps the same kernels in torch custom ops; other
arrays with __dlpack__ (JAX, CuPy, ...) are viewed without a copy by _dlpack."""

from __future__ import annotations

import sys

from . import _dlpack, _numpy_api
from ._factors import check_factor


def _is_torch(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_functional():
    from .torch import functional

    return functional


def _first(ws):
    try:
        return next(iter(ws))
    except (StopIteration, TypeError):
        return None


def l1(w, factor=0.01, *, check_finite: bool = False):
    """factor * sum(|w|): a Python float for NumPy input, a 0-dim differentiable tensor for torch input."""
    if _is_torch(w):
        return _torch_functional().l1(w, factor, check_finite=check_finite)
    if _dlpack.is_foreign(w):
        return _dlpack.value(w, check_factor(factor, "factor"), 0.0, check_finite)
    return _numpy_api.value(w, check_factor(factor, "factor"), 0.0, check_finite)


def l2(w, factor=0.01, *, check_finite: bool = False):
    """factor * sum(w**2). PyTorch's optimizer weight_decay=wd corresponds to factor = wd / 2."""
    if _is_torch(w):
        return _torch_functional().l2(w, factor, check_finite=check_finite)
    if _dlpack.is_foreign(w):
        return _dlpack.value(w, 0.0, check_factor(factor, "factor"), check_finite)
    return _numpy_api.value(w, 0.0, check_factor(factor, "factor"), check_finite)


def l1_l2(w, l1=0.01, l2=0.01, *, check_finite: bool = False):
    """l1 * sum(|w|) + l2 * sum(w**2), in one pass over w."""
    if _is_torch(w):
        return _torch_functional().l1_l2(w, l1, l2, check_finite=check_finite)
    if _dlpack.is_foreign(w):
        return _dlpack.value(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)
    return _numpy_api.value(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)


def grad(w, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """A new array (tensor) of w's shape and dtype: l1 * sign(w) + 2 * l2 * w, with sign(0) = 0."""
    if _is_torch(w):
        return _torch_functional().grad(w, l1, l2, check_finite=check_finite)
    if _dlpack.is_foreign(w):
        return _dlpack.grad(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)
    return _numpy_api.grad(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)


def accumulate_(w, g, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """g += grad(w) in one fused pass that also returns the penalty value of w."""
    if _is_torch(w) or _is_torch(g):
        return _torch_functional().accumulate_(w, g, l1, l2, check_finite=check_finite)
    if _dlpack.is_foreign(w) or _dlpack.is_foreign(g):
        return _dlpack.accumulate_(w, g, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)
    return _numpy_api.accumulate_(w, g, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)


def value_many(ws, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """Total penalty over a list of weights in one call; l1/l2 are one float or one per tensor."""
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    if _is_torch(_first(ws)):
        return _torch_functional().value_many(ws, l1, l2, check_finite=check_finite)
    if _dlpack.any_foreign(ws):
        return _dlpack.value_many(ws, l1, l2, check_finite)
    return _numpy_api.value_many(ws, l1, l2, check_finite)


def accumulate_many_(ws, gs, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """Every gs[i] += grad(ws[i]) in one fused multi-tensor call; returns the total value."""
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    gs = gs if isinstance(gs, (list, tuple)) else list(gs)
    if _is_torch(_first(ws)) or _is_torch(_first(gs)):
        return _torch_functional().accumulate_many_(ws, gs, l1, l2, check_finite=check_finite)
    if _dlpack.any_foreign(ws, gs):
        return _dlpack.accumulate_many_(ws, gs, l1, l2, check_finite)
    return _numpy_api.accumulate_many_(ws, gs, l1, l2, check_finite)
