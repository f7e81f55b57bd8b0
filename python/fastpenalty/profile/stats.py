"""Per-layer statistics. sum|w| and sum w^2 come from fastpenalty's own kernels (one
``_core.sums_many`` read per NumPy array); max |w| and the near-zero share
are plain reductions, done in chunks so no full-size temporary is made. ``w`` is a NumPy array
(CPU, no torch needed) or a torch tensor on an accelerator; both have the operations used here."""

from __future__ import annotations

import math

import numpy as np
from dataclasses import asdict, dataclass, field

from .. import models
from .arrays import dtype_name

_CHUNK = 1 << 22


@dataclass
class LayerStats:
    name: str
    shape: tuple
    dtype: str
    params: int
    l1_sum: float  # sum |w|
    l2_sum: float  # sum w^2
    rms: float
    max_abs: float
    near_zero: int  # weights with |w| <= the threshold
    near_zero_share: float
    penalty: float  # l1 * l1_sum + l2 * l2_sum
    penalty_share: float | None  # of the total over penalized layers; None when excluded
    excluded: bool
    tied: list = field(default_factory=list)  # other names of the same storage, counted once here

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def _kernel_sums(w) -> tuple[float, float]:
    """(sum |w|, sum w^2): one read of a C-contiguous NumPy array by _core.sums_many, else (a
    torch tensor on an accelerator) the two public value functions."""
    if isinstance(w, np.ndarray) and w.flags.c_contiguous:
        from .. import _core, _dtypes

        abs_sums, sq_sums = _core.sums_many([w.ctypes.data], [w.size], [_dtypes.numpy_code(w.dtype)])
        return abs_sums[0], sq_sums[0]
    import fastpenalty
    return float(fastpenalty.l1(w, 1.0)), float(fastpenalty.l2(w, 1.0))


def _threshold_for(compare_dtype, threshold: float) -> float:
    """The largest value of compare_dtype that is <= threshold, so `|w| <= it` in that dtype
    means exactly `|w| <= threshold` in real numbers (0.001 rounds *up* in float32)."""
    np_dtype = np.float64 if compare_dtype == "float64" else np.float32
    t = np_dtype(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np_dtype(-np.inf))
    return float(t)


def _is_wide(w) -> bool:
    return dtype_name(w) == "float64"


def _as_float32(a):
    """Half types compare in float32: the threshold itself may not fit them."""
    if dtype_name(a) in ("float16", "bfloat16"):
        return a.float() if hasattr(a, "float") else a.astype(np.float32)
    return a


def _max_and_near_zero(w, threshold: float) -> tuple[float, int]:
    flat = w.reshape(-1)
    limit = _threshold_for("float64" if _is_wide(w) else "float32", threshold)
    peak, near = 0.0, 0
    for start in range(0, flat.shape[0], _CHUNK):
        a = _as_float32(abs(flat[start:start + _CHUNK]))
        top = float(a.max())
        peak = math.nan if math.isnan(top) or math.isnan(peak) else max(peak, top)  # as NumPy
        near += int((a <= limit).sum())
    return peak, near


def layer_stats(name: str, w, l1: float, l2: float, threshold: float, exclude: bool) -> LayerStats:
    n = math.prod(w.shape)
    s1, s2 = _kernel_sums(w)
    peak, near = _max_and_near_zero(w, threshold)
    return LayerStats(
        name=name, shape=tuple(w.shape), dtype=dtype_name(w),
        params=n, l1_sum=s1, l2_sum=s2, rms=math.sqrt(s2 / n) if n else 0.0,
        max_abs=peak, near_zero=near, near_zero_share=near / n if n else 0.0,
        penalty=l1 * s1 + l2 * s2, penalty_share=None,
        excluded=exclude and models.is_excluded(name, tuple(w.shape)),
    )


def fill_shares(layers: list[LayerStats]) -> float:
    """Sets each penalized layer's share of the total penalty; returns that total."""
    total = sum(s.penalty for s in layers if not s.excluded)
    for s in layers:
        s.penalty_share = None if s.excluded else (s.penalty / total if total > 0 else 0.0)
    return total


def _nan_max(values) -> float:
    values = list(values)
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values, default=0.0)


def totals(layers: list[LayerStats]) -> dict:
    params = sum(s.params for s in layers)
    kept = [s for s in layers if not s.excluded]
    dropped = [s for s in layers if s.excluded]
    l2_all = sum(s.l2_sum for s in layers)
    near = sum(s.near_zero for s in layers)
    return {
        "tensors": len(layers),
        "tied_names": sum(len(s.tied) for s in layers),
        "params": params,
        "penalized_tensors": len(kept),
        "penalized_params": sum(s.params for s in kept),
        "excluded_tensors": len(dropped),
        "excluded_params": sum(s.params for s in dropped),
        "l1_sum": sum(s.l1_sum for s in layers),
        "l2_sum": l2_all,
        "rms": math.sqrt(l2_all / params) if params else 0.0,
        "max_abs": _nan_max(s.max_abs for s in layers),
        "near_zero": near,
        "near_zero_share": near / params if params else 0.0,
        "penalty": sum(s.penalty for s in kept),
        "penalty_of_excluded": sum(s.penalty for s in dropped),
    }
