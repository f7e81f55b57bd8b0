"""The public operations for NumPy arrays (and array-likes), over fastpenalty._core."""

from __future__ import annotations

import math

import numpy as np

from . import _core, _dtypes
from ._dtypes import numpy_code, result_is_fp64
from ._factors import check_factor_list, factor_lists
from ._prox_result import ProxResult

# Plain C-contiguous arrays of a known dtype with plain float factors are read in C++
# (_core.numpy_value_many / numpy_accumulate_many, about 0.1 us per array); those return None for
# anything else, and the Python code below converts, checks and names the offending argument.
_core.register_numpy_types(np.ndarray, _dtypes.NUMPY_DTYPES)

def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _refuse_masked(a, name: str) -> None:
    """np.asarray drops a mask, so the kernels would sum the masked-out values: refuse instead."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a NumPy masked array; fastpenalty does not apply masks. Pass "
            f"{name}.filled(0) to penalize only the unmasked values, or {name}.data for all of them"
        )


def _readable(w, name: str) -> tuple[np.ndarray, int]:
    """Any strided array becomes a C-contiguous aligned one (a copy only when needed)."""
    _refuse_masked(w, name)
    a = np.asarray(w)
    code = numpy_code(a.dtype, name)
    if not (a.flags.c_contiguous and a.flags.aligned):
        a = np.require(a, requirements=["C", "A"])
    return a, code


def _writable_pair(w, g, wname: str, gname: str) -> tuple[np.ndarray, np.ndarray, int]:
    """w and g for an in-place update: same shape and dtype, C-contiguous, aligned, g writable, no overlap."""
    if not isinstance(g, np.ndarray):
        raise TypeError(f"{gname} must be a NumPy array, got {type(g).__name__}")
    _refuse_masked(w, wname)
    _refuse_masked(g, gname)
    w = np.asarray(w)
    code = numpy_code(w.dtype, wname)
    if g.dtype != w.dtype:
        raise ValueError(f"{gname} has dtype {g.dtype} but {wname} has dtype {w.dtype}")
    if g.shape != w.shape:
        raise ValueError(f"{gname} has shape {g.shape} but {wname} has shape {w.shape}")
    if not g.flags.writeable:
        raise ValueError(f"{gname} is read-only")
    for a, name in ((w, wname), (g, gname)):
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous for an in-place update (use np.ascontiguousarray)")
        if not a.flags.aligned:
            raise ValueError(f"{name} is not aligned to its dtype's size")
    if w.size and np.may_share_memory(w, g):
        raise ValueError(f"{wname} and {gname} overlap in memory")
    return w, g, code


def _result(value: float, codes) -> float:
    return float(value) if result_is_fp64(codes) else _core.as_float32(value)


def _raise_if_not_finite(arrays, names) -> None:
    for a, code, name in zip(arrays, *names):
        if a.size and not math.isfinite(_core.value(_ptr(a), a.size, code, 1.0, 0.0)):
            raise ValueError(f"{name} contains NaN or Inf (check_finite=True)")


def value(w, l1: float, l2: float, check_finite: bool = False) -> float:
    if not check_finite and (v := _core.numpy_value_many([w], l1, l2)) is not None:
        return v
    a, code = _readable(w, "w")
    if check_finite:  # the elements too: with zero factors an Inf leaves the value finite
        _raise_if_not_finite([a], ([code], ["w"]))
    v = _core.value(_ptr(a), a.size, code, l1, l2)
    if check_finite and not math.isfinite(v):
        raise ValueError("the penalty value is not finite (check_finite=True)")
    return _result(v, [code])


def grad(w, l1: float, l2: float, check_finite: bool = False) -> np.ndarray:
    a, code = _readable(w, "w")
    if check_finite:
        _raise_if_not_finite([a], ([code], ["w"]))
    out = np.empty(a.shape, dtype=a.dtype)
    _core.grad(_ptr(a), _ptr(out), a.size, code, l1, l2)
    return out


def accumulate_(w, g, l1: float, l2: float, check_finite: bool = False) -> float:
    if not check_finite and (v := _core.numpy_accumulate_many([w], [g], l1, l2)) is not None:
        return v
    a, g, code = _writable_pair(w, g, "w", "g")
    if check_finite:
        _raise_if_not_finite([a], ([code], ["w"]))
    return _result(_core.accumulate(_ptr(a), _ptr(g), a.size, code, l1, l2), [code])


def value_many(ws, l1, l2, check_finite: bool = False) -> float:
    ws = list(ws)
    if not check_finite and (v := _core.numpy_value_many(ws, l1, l2)) is not None:
        return v
    l1s, l2s = factor_lists(l1, l2, len(ws))
    pairs = [_readable(w, f"ws[{i}]") for i, w in enumerate(ws)]
    arrays = [a for a, _ in pairs]
    codes = [c for _, c in pairs]
    if check_finite:
        _raise_if_not_finite(arrays, (codes, [f"ws[{i}]" for i in range(len(ws))]))
    v = _core.value_many([_ptr(a) for a in arrays], [a.size for a in arrays], codes, l1s, l2s)
    return _result(v, codes)


def accumulate_many_(ws, gs, l1, l2, check_finite: bool = False) -> float:
    ws, gs = list(ws), list(gs)
    if not check_finite and (v := _core.numpy_accumulate_many(ws, gs, l1, l2)) is not None:
        return v
    if len(ws) != len(gs):
        raise ValueError(f"ws has {len(ws)} arrays but gs has {len(gs)}")
    l1s, l2s = factor_lists(l1, l2, len(ws))
    triples = [_writable_pair(w, g, f"ws[{i}]", f"gs[{i}]") for i, (w, g) in enumerate(zip(ws, gs))]
    codes = [c for _, _, c in triples]
    if check_finite:
        _raise_if_not_finite([w for w, _, _ in triples], (codes, [f"ws[{i}]" for i in range(len(ws))]))
    v = _core.accumulate_many(
        [_ptr(w) for w, _, _ in triples],
        [_ptr(g) for _, g, _ in triples],
        [w.size for w, _, _ in triples],
        codes,
        l1s,
        l2s,
    )
    return _result(v, codes)


def _prox_target(w, name: str) -> tuple[np.ndarray, int]:
    """w for an in-place proximal step: a writable, C-contiguous, aligned array of a supported
    dtype (an array-like has no memory to write back into)."""
    _refuse_masked(w, name)
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array to be updated in place, got {type(w).__name__}")
    code = numpy_code(w.dtype, name)
    if not w.flags.writeable:
        raise ValueError(f"{name} is read-only")
    if not w.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous for an in-place update (use np.ascontiguousarray)")
    if not w.flags.aligned:
        raise ValueError(f"{name} is not aligned to its dtype's size")
    return w, code


def _require_disjoint(arrays, names) -> None:
    """Every array is written: no two may share memory (one sort over their byte ranges)."""
    spans = sorted((_ptr(a), _ptr(a) + a.nbytes, name) for a, name in zip(arrays, names) if a.size)
    for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"{first} and {second} share memory; arrays updated in place must not overlap")


def _three_lists(lr, l1, l2, count: int) -> tuple[list[float], list[float], list[float]]:
    """lr, l1, l2 checked, each of length 1 or `count` (all `count` when any is)."""
    lists = [check_factor_list(f, name, count) for f, name in ((lr, "lr"), (l1, "l1"), (l2, "l2"))]
    if any(len(f) != 1 for f in lists):
        lists = [f * count if len(f) == 1 else f for f in lists]
    return lists[0], lists[1], lists[2]


def prox_many_(ws, lr, l1, l2, check_finite: bool = False) -> ProxResult:
    """Every ws[i] <- prox(ws[i]) in place; the value and zeros of the result."""
    ws = list(ws)
    if not check_finite and (r := _core.numpy_prox_many(ws, lr, l1, l2)) is not None:
        return ProxResult(r[0], int(r[1]))
    names = [f"ws[{i}]" for i in range(len(ws))]
    lrs, l1s, l2s = _three_lists(lr, l1, l2, len(ws))
    pairs = [_prox_target(w, name) for w, name in zip(ws, names)]
    arrays, codes = [a for a, _ in pairs], [c for _, c in pairs]
    _require_disjoint(arrays, names)
    if check_finite:
        _raise_if_not_finite(arrays, (codes, names))
    if not arrays:
        return ProxResult(0.0, 0)
    v, zeros = _core.prox_many([_ptr(a) for a in arrays], [a.size for a in arrays], codes,
                               lrs, l1s, l2s)
    return ProxResult(_result(v, codes), int(zeros))


__all__ = ["value", "grad", "accumulate_", "value_many", "accumulate_many_", "prox_many_"]
