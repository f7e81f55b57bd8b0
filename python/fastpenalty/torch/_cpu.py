"""CPU kernels: torch tensors handed to fastpenalty._core as raw pointers, no copies.

Factors arrive as Python floats (one, or one per tensor). The multi-tensor functions check
their own tensors: the common case (plain contiguous CPU tensors, as a model's parameters and
gradients are) is recognised in one pass that also gathers the pointer lists the core takes;
anything else goes through the detailed checks (errors naming the tensor) and, for tensors that
are not dense, a contiguous staging copy, so every layout gets the right answer. The core
releases the GIL while it works.
"""
import math
from typing import NamedTuple

import numpy as np
import torch

from .. import _core
from . import _checks
from ._layout import DTYPE_CODES, readable, staged_target, writable_in_place
from ._outputs import grad_buffer, value_dtype
from ._overlap import require_disjoint, require_disjoint_flat

PLAIN_TYPES = frozenset((torch.Tensor, torch.nn.Parameter))  # no subclass with its own dispatch
_FP64 = DTYPE_CODES[torch.float64]
_FP32_MAX = float(torch.finfo(torch.float32).max)
_STRIDED = torch.strided
# grad over a whole list in one call, where the core has it (else one call per tensor)
_grad_many = getattr(_core, "grad_many", None)


class Flat(NamedTuple):
    """What the core takes for a list of tensors: addresses, element counts, dtype codes."""
    ptrs: list
    sizes: list
    codes: list


class FlatPairs(NamedTuple):
    w_ptrs: list
    g_ptrs: list
    sizes: list
    codes: list


def plain_weights(ws, recording: bool = False):
    """Flat lists for ws in one pass when every tensor is a plain, contiguous CPU tensor of a
    supported dtype (and, when autograd records, none requires grad); else None."""
    try:
        return _plain_weights(ws, recording)
    except RuntimeError:  # a sparse or other non-strided tensor: the detailed checks name it
        return None


def _plain_weights(ws, recording: bool):
    ptrs, sizes, codes = [], [], []
    codes_of = DTYPE_CODES.get
    for w in ws:
        if type(w) not in PLAIN_TYPES:
            return None
        code = codes_of(w.dtype)
        if (code is None or not w.is_cpu or w.layout is not _STRIDED or w.is_nested
                or not w.is_contiguous() or w.is_neg() or (recording and w.requires_grad)):
            return None
        ptrs.append(w.data_ptr())
        sizes.append(w.numel())
        codes.append(code)
    return Flat(ptrs, sizes, codes)


def plain_pairs(ws, gs):
    """Flat lists for (ws, gs) in one pass when every pair is plain, contiguous, on the CPU, of
    one supported dtype and shape, and every g may be written; else None."""
    if len(ws) != len(gs):
        return None
    try:
        return _plain_pairs(ws, gs)
    except RuntimeError:  # a sparse or other non-strided tensor: the detailed checks name it
        return None


def _plain_pairs(ws, gs):
    w_ptrs, g_ptrs, sizes, codes = [], [], [], []
    codes_of = DTYPE_CODES.get
    for w, g in zip(ws, gs):
        if type(w) not in PLAIN_TYPES or type(g) not in PLAIN_TYPES:
            return None
        dtype = w.dtype
        code = codes_of(dtype)
        if (code is None or g.dtype != dtype or not w.is_cpu or not g.is_cpu
                or w.layout is not _STRIDED or g.layout is not _STRIDED or w.is_nested
                or g.is_nested or not w.is_contiguous() or not g.is_contiguous()
                or w.is_neg() or g.is_neg() or g.requires_grad
                or g.is_inference() or g.shape != w.shape):
            return None
        w_ptrs.append(w.data_ptr())
        g_ptrs.append(g.data_ptr())
        sizes.append(w.numel())
        codes.append(code)
    return FlatPairs(w_ptrs, g_ptrs, sizes, codes)


def _staged_weights(ws) -> tuple:
    """Flat lists over dense versions of ws, and the staging copies that must outlive the call."""
    dense = [readable(w) for w in ws]
    return Flat([w.data_ptr() for w in dense], [w.numel() for w in dense],
                [DTYPE_CODES[w.dtype] for w in dense]), dense


def _dtype_of(codes) -> torch.dtype:
    fp64 = bool(codes) and codes.count(_FP64) == len(codes)
    return torch.float64 if fp64 else torch.float32


def _rounded(v: float, dtype: torch.dtype) -> float:
    """v as the value tensor will hold it: a float32 beyond its range is inf, not an error."""
    if dtype == torch.float32 and abs(v) > _FP32_MAX:
        with np.errstate(over="ignore"):
            return float(np.float32(v))
    return v


def _value_tensor(v: float, codes) -> torch.Tensor:
    dtype = _dtype_of(codes)
    return torch.scalar_tensor(_rounded(v, dtype), dtype=dtype)


def as_value(v: float, dtypes) -> torch.Tensor:
    dtype = value_dtype(dtypes)
    return torch.scalar_tensor(_rounded(v, dtype), dtype=dtype)


def require_finite_value(v: float, dtype: torch.dtype) -> float:
    """check_finite=True: the value returned must be finite (elements were checked before)."""
    if not math.isfinite(_rounded(v, dtype)):
        raise ValueError(_checks.NOT_FINITE)
    return v


def _paired(l1s: list, l2s: list, n: int) -> tuple:
    """The core takes one factor pair for all tensors or one pair per tensor."""
    if len(l1s) == len(l2s):
        return l1s, l2s
    return (l1s * n if len(l1s) == 1 else l1s), (l2s * n if len(l2s) == 1 else l2s)


def _check_factors(l1s: list, l2s: list, n: int) -> tuple:
    _checks.factor_values(l1s, "l1")
    _checks.factor_values(l2s, "l2")
    return _paired(l1s, l2s, n)


# ---------------------------------------------------------------------------------- finiteness

def _first_not_finite(flat: Flat, ws, names) -> None:
    """ValueError naming the first tensor holding NaN or Inf. One fused read pass (sum |w|); only
    when that sum is not finite are the tensors looked at one by one."""
    n = len(flat.ptrs)
    if not n:
        return
    if math.isfinite(_core.value_many(flat.ptrs, flat.sizes, flat.codes, [1.0] * n, [0.0] * n)):
        return
    for w, name in zip(ws, names):
        if w.numel() and not bool(torch.isfinite(w).all()):
            raise ValueError(f"{name} contains NaN or Inf (check_finite=True)")
    # every element finite: the sum overflowed, which is no error


def require_finite(ws, names) -> None:
    flat, _keep = _staged_weights(ws)
    _first_not_finite(flat, ws, names)


def _names(n: int) -> list:
    return [f"ws[{i}]" for i in range(n)]


# --------------------------------------------------------------------------------- one tensor

def _nothing_to_do(w, l1: float, l2: float, check_finite: bool) -> bool:
    """Checks the factors (and w, when asked); True when the value is 0 and g stays as it is."""
    _checks.factor_value(l1, "l1")
    _checks.factor_value(l2, "l2")
    if check_finite:
        require_finite([w], ["w"])
    return w.numel() == 0 or (l1 == 0.0 and l2 == 0.0)


def value(w, l1: float, l2: float, check_finite: bool) -> torch.Tensor:
    if _nothing_to_do(w, l1, l2, check_finite):
        return as_value(0.0, (w.dtype,))
    src = readable(w)
    v = _core.value(src.data_ptr(), src.numel(), DTYPE_CODES[src.dtype], l1, l2)
    if check_finite:
        require_finite_value(v, value_dtype((w.dtype,)))
    return as_value(v, (w.dtype,))


def grad(w, l1: float, l2: float, scale: float = 1.0) -> torch.Tensor:
    """scale * grad(w). The scale (autograd's incoming gradient) is folded into the factors so
    the result is rounded once; the core takes factors >= 0, so a negative scale runs with
    |scale| and the sign is applied afterwards."""
    out = grad_buffer(w)
    if w.numel() == 0:
        return out
    if l1 == 0.0 and l2 == 0.0:
        return out.zero_()
    src = readable(w)
    a, b = l1 * abs(scale), l2 * abs(scale)
    folded = scale != 0.0 and math.isfinite(a) and math.isfinite(b)
    if not folded:  # 0, NaN or Inf scale, or overflow: multiply afterwards so NaN/Inf propagate
        a, b = l1, l2
    _core.grad(src.data_ptr(), out.data_ptr(), src.numel(), DTYPE_CODES[w.dtype], a, b)
    if not folded:
        out.mul_(scale)
    elif scale < 0.0:
        out.neg_()
    return out


def accumulate(w, g, l1: float, l2: float, check_finite: bool) -> torch.Tensor:
    """g += grad(w); the caller has checked the pair and its memory."""
    if _nothing_to_do(w, l1, l2, check_finite):
        return as_value(0.0, (w.dtype,))
    if check_finite:  # a read pass first: nothing is written when the value is not finite
        value(w, l1, l2, check_finite)
    if writable_in_place(w, g):
        v = _core.accumulate(w.data_ptr(), g.data_ptr(), w.numel(), DTYPE_CODES[w.dtype], l1, l2)
    else:
        wc, gc = readable(w).contiguous(), staged_target(g)
        v = _core.accumulate(wc.data_ptr(), gc.data_ptr(), wc.numel(), DTYPE_CODES[w.dtype], l1, l2)
        if gc is not g:
            g.copy_(gc)
    return as_value(v, (w.dtype,))


# ------------------------------------------------------------------------------- many tensors

def value_flat(flat: Flat, ws, l1s: list, l2s: list, check_finite: bool) -> torch.Tensor:
    l1s, l2s = _check_factors(l1s, l2s, len(flat.ptrs))
    if check_finite:
        _first_not_finite(flat, ws, _names(len(ws)))
    v = _core.value_many(flat.ptrs, flat.sizes, flat.codes, l1s, l2s)
    if check_finite:
        require_finite_value(v, _dtype_of(flat.codes))
    return _value_tensor(v, flat.codes)


def value_many(ws, l1s: list, l2s: list, check_finite: bool) -> torch.Tensor:
    flat = plain_weights(ws)
    if flat is not None:
        return value_flat(flat, ws, l1s, l2s, check_finite)
    _checks.many(ws, "ws")
    flat, _keep = _staged_weights(ws)
    return value_flat(flat, ws, l1s, l2s, check_finite)


def accumulate_flat(pairs: FlatPairs, ws, gs, l1s: list, l2s: list,
                    check_finite: bool) -> torch.Tensor:
    l1s, l2s = _check_factors(l1s, l2s, len(pairs.sizes))
    require_disjoint_flat(pairs)
    if check_finite:  # a read pass first: nothing is written when the value is not finite
        value_flat(Flat(pairs.w_ptrs, pairs.sizes, pairs.codes), ws, l1s, l2s, True)
    total = _core.accumulate_many(pairs.w_ptrs, pairs.g_ptrs, pairs.sizes, pairs.codes, l1s, l2s)
    return _value_tensor(total, pairs.codes)


def accumulate_many(ws, gs, l1s: list, l2s: list, check_finite: bool) -> torch.Tensor:
    pairs = plain_pairs(ws, gs)
    if pairs is not None:
        return accumulate_flat(pairs, ws, gs, l1s, l2s, check_finite)
    _checks.targets(ws, gs)
    l1s, l2s = _check_factors(l1s, l2s, len(ws))
    require_disjoint(ws, gs, single=False)
    if check_finite:  # a read pass first: nothing is written when the value is not finite
        value_many(ws, l1s, l2s, True)
    staged = []  # (g, the contiguous copy the core writes, w's copy) for pairs not laid out alike
    w_ptrs, g_ptrs = [], []
    for w, g in zip(ws, gs):
        if not writable_in_place(w, g):
            w, g_copy = readable(w).contiguous(), staged_target(g)
            staged.append((g, g_copy, w))
            g = g_copy
        w_ptrs.append(w.data_ptr())
        g_ptrs.append(g.data_ptr())
    codes = [DTYPE_CODES[w.dtype] for w in ws]
    total = _core.accumulate_many(w_ptrs, g_ptrs, [w.numel() for w in ws], codes, l1s, l2s)
    for g, g_copy, _ in staged:
        if g_copy is not g:
            g.copy_(g_copy)
    return _value_tensor(total, codes)


def grad_many(ws, l1s: list, l2s: list, scale: float) -> list:
    """[scale * grad(w) for w in ws]: the backward of value_many. One core call where the core
    has grad_many and the tensors are plain, else one call per tensor."""
    n = len(ws)
    l1s, l2s = _paired(l1s, l2s, n)
    if len(l1s) == 1:
        l1s, l2s = l1s * n, l2s * n
    a = [f * abs(scale) for f in l1s]
    b = [f * abs(scale) for f in l2s]
    foldable = scale != 0.0 and math.isfinite(sum(a) + sum(b))
    flat = plain_weights(ws) if _grad_many is not None and foldable else None
    if flat is None:
        return [grad(w, x, y, scale) for w, x, y in zip(ws, l1s, l2s)]
    outs = [torch.empty_like(w) for w in ws]
    _grad_many(flat.ptrs, [o.data_ptr() for o in outs], flat.sizes, flat.codes, a, b)
    if scale < 0.0:
        torch._foreach_neg_(outs)
    return outs
