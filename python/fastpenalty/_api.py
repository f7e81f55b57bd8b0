"""The public penalty functions. NumPy arrays (and array-likes) run on the C++ core directly; torch
tensors go to fastpenalty.torch.functional, which wraps the same kernels in torch custom ops; other
arrays with __dlpack__ (JAX, CuPy, ...) are viewed without a copy by _dlpack."""

from __future__ import annotations

import math
import sys

from . import _dlpack, _numpy_api
from ._factors import check_factor


def _is_torch(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _torch_functional():
    from .torch import functional

    return functional


def _backend(*arrays):
    """The module serving non-torch arrays: _dlpack for foreign ones (JAX, CuPy...), else NumPy.
    Both take the same arguments."""
    return _dlpack if any(_dlpack.is_foreign(a) for a in arrays) else _numpy_api


# check_finite=True promises a finite value or an error before anything is written, for every
# input kind: the torch layer checks this itself; for the others, the value is computed (and
# checked) first, then g written without checking again.
_NOT_FINITE = "the penalty value is not finite (check_finite=True)"


def _finite(value):
    if not math.isfinite(float(value)):
        raise ValueError(_NOT_FINITE)
    return value


def _first(ws):
    try:
        return next(iter(ws))
    except (StopIteration, TypeError):
        return None


def l1(w, factor=0.01, *, check_finite: bool = False):
    """factor * sum(|w|): a Python float for NumPy input, a 0-dim differentiable tensor for torch input."""
    if _is_torch(w):
        return _torch_functional().l1(w, factor, check_finite=check_finite)
    return _value(w, check_factor(factor, "factor"), 0.0, check_finite)


def l2(w, factor=0.01, *, check_finite: bool = False):
    """factor * sum(w**2). PyTorch's optimizer weight_decay=wd corresponds to factor = wd / 2."""
    if _is_torch(w):
        return _torch_functional().l2(w, factor, check_finite=check_finite)
    return _value(w, 0.0, check_factor(factor, "factor"), check_finite)


def l1_l2(w, l1=0.01, l2=0.01, *, check_finite: bool = False):
    """l1 * sum(|w|) + l2 * sum(w**2), in one pass over w."""
    if _is_torch(w):
        return _torch_functional().l1_l2(w, l1, l2, check_finite=check_finite)
    return _value(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)


def _value(w, l1: float, l2: float, check_finite: bool):
    v = _backend(w).value(w, l1, l2, check_finite)
    return _finite(v) if check_finite else v


def grad(w, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """A new array (tensor) of w's shape and dtype: l1 * sign(w) + 2 * l2 * w, with sign(0) = 0."""
    if _is_torch(w):
        return _torch_functional().grad(w, l1, l2, check_finite=check_finite)
    return _backend(w).grad(w, check_factor(l1, "l1"), check_factor(l2, "l2"), check_finite)


def accumulate_(w, g, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """g += grad(w) in one fused pass that also returns the penalty value of w."""
    if _is_torch(w) or _is_torch(g):
        return _torch_functional().accumulate_(w, g, l1, l2, check_finite=check_finite)
    backend, l1, l2 = _backend(w, g), check_factor(l1, "l1"), check_factor(l2, "l2")
    if check_finite:
        _finite(backend.value(w, l1, l2, True))
    return backend.accumulate_(w, g, l1, l2, False)


def value_many(ws, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """Total penalty over a list of weights in one call; l1/l2 are one float or one per tensor."""
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    if _is_torch(_first(ws)):
        return _torch_functional().value_many(ws, l1, l2, check_finite=check_finite)
    v = _backend(*ws).value_many(ws, l1, l2, check_finite)
    return _finite(v) if check_finite else v


def accumulate_many_(ws, gs, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """Every gs[i] += grad(ws[i]) in one fused multi-tensor call; returns the total value."""
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    gs = gs if isinstance(gs, (list, tuple)) else list(gs)
    if _is_torch(_first(ws)) or _is_torch(_first(gs)):
        return _torch_functional().accumulate_many_(ws, gs, l1, l2, check_finite=check_finite)
    backend = _backend(*ws, *gs)
    if check_finite:
        _finite(backend.value_many(ws, l1, l2, True))
    return backend.accumulate_many_(ws, gs, l1, l2, False)
