"""The public penalty functions. NumPy arrays (and array-likes) run on the C++ core directly; torch
tensors go to fastpenalty.torch.functional, which wraps the same kernels in torch custom ops; other
arrays with __dlpack__ (JAX, CuPy, ...) are viewed without a copy by _dlpack."""

from __future__ import annotations

import math
import sys

import numpy as np

from . import _core, _dlpack, _numpy_api
from ._factors import check_factor
from ._prox_result import ProxResult


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
    if not check_finite and (v := _core.numpy_value_many(list(ws), l1, l2)) is not None:
        return v  # plain ndarrays and number factors, read in C++: no Python pass per array
    v = _backend(*ws).value_many(ws, l1, l2, check_finite)
    return _finite(v) if check_finite else v


def accumulate_many_(ws, gs, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """Every gs[i] += grad(ws[i]) in one fused multi-tensor call; returns the total value."""
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    gs = gs if isinstance(gs, (list, tuple)) else list(gs)
    if _is_torch(_first(ws)) or _is_torch(_first(gs)):
        return _torch_functional().accumulate_many_(ws, gs, l1, l2, check_finite=check_finite)
    if not check_finite and (v := _core.numpy_accumulate_many(list(ws), list(gs), l1, l2)) is not None:
        return v  # as in value_many
    backend = _backend(*ws, *gs)
    if check_finite:
        _finite(backend.value_many(ws, l1, l2, True))
    return backend.accumulate_many_(ws, gs, l1, l2, False)


def prox_(w, lr, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """w <- sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2) in place, the proximal step of the
    elastic net (exact zeros, unlike the subgradient l1 * sign(w)). Returns ProxResult(value,
    zeros) of the result. Every check happens before anything is written."""
    if _is_torch(w):
        return _torch_functional().prox_(w, lr, l1, l2, check_finite=check_finite)
    return prox_many_([w], lr, l1, l2, check_finite=check_finite)


def prox_many_(ws, lr, l1=0.0, l2=0.0, *, check_finite: bool = False):
    """prox_ over every array of ws in one fused call; lr, l1, l2 are one number or one per array.
    Returns ProxResult(value, zeros) summed over all of them."""
    if _is_torch(ws) or isinstance(ws, np.ndarray) or _dlpack.is_foreign(ws):
        raise TypeError("ws must be a sequence of arrays, got a single array; use prox_ for one")
    ws = ws if isinstance(ws, (list, tuple)) else list(ws)
    if _is_torch(_first(ws)):
        return _torch_functional().prox_many_(ws, lr, l1, l2, check_finite=check_finite)
    if any(_dlpack.is_foreign(w) for w in ws):
        return _foreign_prox_many_(ws, lr, l1, l2, check_finite)
    return _numpy_api.prox_many_(ws, lr, l1, l2, check_finite)


def _foreign_prox_many_(ws, lr, l1, l2, check_finite: bool):
    """DLPack arrays (CuPy, a writable export...): written through a view, never a copy."""
    names = [f"ws[{i}]" for i in range(len(ws))]
    for w, name in zip(ws, names):
        immutable = _dlpack._IMMUTABLE.get(_dlpack._framework(w))
        if immutable is not None:
            raise ValueError(f"{name} is a {immutable}, which is immutable: prox_ cannot update it "
                             "in place; apply the step to a NumPy copy or a torch tensor")
    if _dlpack._on_device(ws, names):
        views = [_dlpack._device_view(w, name) for w, name in zip(ws, names)]
        value, zeros = _torch_functional().prox_many_(views, lr, l1, l2, check_finite=check_finite)
        return ProxResult(_dlpack.as_kind_of(ws[0], value), _dlpack.as_kind_of(ws[0], zeros))
    views = [_dlpack._host_view(w, name) for w, name in zip(ws, names)]
    for v, w, name in zip(views, ws, names):
        if not v.flags.writeable:
            raise ValueError(f"{name} ({type(w).__name__}) was exported read-only through DLPack: "
                             "prox_ cannot update it in place")
    return _numpy_api.prox_many_(views, lr, l1, l2, check_finite)
