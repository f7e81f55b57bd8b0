"""Plain NumPy implementations of every operation: the oracle of the tests.

Everything is computed in float64 and rounded once to the output dtype, so these are as close to
exact as NumPy gets; the fused kernels are compared against them with per-dtype tolerances.
A factor equal to 0 switches its term off (as in Keras and in the kernels).
"""

from __future__ import annotations

import numpy as np


def _f64(w) -> np.ndarray:
    return np.asarray(w).astype(np.float64)


def _value64(x: np.ndarray, l1: float, l2: float) -> float:
    v = 0.0
    if l1:
        v += l1 * float(np.abs(x).sum())
    if l2:
        v += l2 * float(np.square(x).sum())
    return v


def _grad64(x: np.ndarray, l1: float, l2: float) -> np.ndarray:
    t = np.zeros_like(x)
    if l1:
        t = t + l1 * np.sign(x)
    if l2:
        t = t + (2.0 * l2) * x
    return t


def l1(w, factor=0.01) -> float:
    return _value64(_f64(w), float(factor), 0.0)


def l2(w, factor=0.01) -> float:
    return _value64(_f64(w), 0.0, float(factor))


def l1_l2(w, l1=0.01, l2=0.01) -> float:
    return _value64(_f64(w), float(l1), float(l2))


def grad(w, l1=0.0, l2=0.0) -> np.ndarray:
    w = np.asarray(w)
    return _grad64(_f64(w), float(l1), float(l2)).astype(w.dtype)


def accumulate_(w, g, l1=0.0, l2=0.0) -> float:
    x = _f64(w)
    if l1 or l2:
        g[...] = (g.astype(np.float64) + _grad64(x, float(l1), float(l2))).astype(g.dtype)
    return _value64(x, float(l1), float(l2))


def _per_tensor(f, n: int) -> list[float]:
    if np.ndim(f) == 0:
        return [float(f)] * n
    return [float(v) for v in f]


def value_many(ws, l1=0.0, l2=0.0) -> float:
    ws = list(ws)
    l1s, l2s = _per_tensor(l1, len(ws)), _per_tensor(l2, len(ws))
    return sum(_value64(_f64(w), a, b) for w, a, b in zip(ws, l1s, l2s))


def accumulate_many_(ws, gs, l1=0.0, l2=0.0) -> float:
    ws, gs = list(ws), list(gs)
    l1s, l2s = _per_tensor(l1, len(ws)), _per_tensor(l2, len(ws))
    return sum(accumulate_(w, g, a, b) for w, g, a, b in zip(ws, gs, l1s, l2s))


def _prox64(x: np.ndarray, lr: float, l1: float, l2: float) -> np.ndarray:
    """sign(x) * max(|x| - lr*l1, 0) / (1 + 2*lr*l2) in float64; an element that ends at 0 is
    +0 (a -0 input too) and a NaN stays NaN (csrc/common/penalty_math.h)."""
    mag = np.abs(x)
    if lr * l1:
        mag = np.maximum(mag - lr * l1, 0.0)
    if lr * l2:
        mag = mag / (1.0 + 2.0 * lr * l2)
    out = np.copysign(mag, x)
    out[mag == 0.0] = 0.0  # +0 for a shrunk element; a written -0 becomes +0 too
    return np.where(np.isnan(x), x, out)


def prox_(w, lr, l1=0.0, l2=0.0):
    """w <- prox(w) in place: sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2), computed in float64
    and rounded once to w's dtype; nothing is written when lr == 0 or l1 == l2 == 0. Returns
    (value of the result, number of exact zeros in the result)."""
    lr, l1, l2 = float(lr), float(l1), float(l2)
    if lr and (l1 or l2) and w.size:
        w[...] = _prox64(_f64(w), lr, l1, l2).astype(w.dtype)
    x = _f64(w)
    return _value64(x, l1, l2), int(np.count_nonzero(x == 0.0))


def prox_many_(ws, lr, l1=0.0, l2=0.0):
    """prox_ over every w of ws; lr, l1, l2 one number or one per array. Returns the summed
    (value, zeros)."""
    ws = list(ws)
    lrs, l1s, l2s = (_per_tensor(f, len(ws)) for f in (lr, l1, l2))
    lrs, l1s, l2s = (f * len(ws) if len(f) == 1 else f for f in (lrs, l1s, l2s))
    results = [prox_(w, a, b, c) for w, a, b, c in zip(ws, lrs, l1s, l2s)]
    return sum(v for v, _ in results), sum(z for _, z in results)
