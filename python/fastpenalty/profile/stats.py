"""Per-layer statistics. sum|w| and sum w^2 come from fastpenalty's own kernels
(``fastpenalty.l1(w, 1.0)`` and ``fastpenalty.l2(w, 1.0)``); max |w| and the near-zero share
are plain torch reductions, done in chunks so no full-size temporary is made."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .. import models

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

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d


def kernel_input(tensor):
    """What fastpenalty's kernels get: a zero-copy NumPy view of a CPU tensor, else the tensor."""
    import torch
    if tensor.device.type != "cpu":
        return tensor
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def _kernel_sums(tensor) -> tuple[float, float]:
    import fastpenalty
    w = kernel_input(tensor)
    return float(fastpenalty.l1(w, 1.0)), float(fastpenalty.l2(w, 1.0))


def _threshold_for(compare_dtype, threshold: float) -> float:
    """The largest value of compare_dtype that is <= threshold, so `|w| <= it` in that dtype
    means exactly `|w| <= threshold` in real numbers (0.001 rounds *up* in float32)."""
    import numpy as np
    np_dtype = np.float64 if compare_dtype == "float64" else np.float32
    t = np_dtype(threshold)
    if float(t) > threshold:
        t = np.nextafter(t, np_dtype(-np.inf))
    return float(t)


def _max_and_near_zero(tensor, threshold: float) -> tuple[float, int]:
    import torch
    flat = tensor.reshape(-1)
    wide = tensor.dtype == torch.float64
    limit = _threshold_for("float64" if wide else "float32", threshold)
    peak = torch.zeros((), dtype=torch.float64 if wide else torch.float32, device=tensor.device)
    near = 0
    for start in range(0, flat.numel(), _CHUNK):
        a = flat[start:start + _CHUNK].abs()
        peak = torch.maximum(peak, a.max().to(peak.dtype))  # NaN propagates, as in NumPy
        if a.dtype in (torch.float16, torch.bfloat16):
            a = a.float()  # compare in float32: the threshold itself may not fit a half type
        near += int((a <= limit).sum())
    return float(peak), near


def layer_stats(name: str, tensor, l1: float, l2: float, threshold: float, exclude: bool) -> LayerStats:
    import torch
    with torch.no_grad():
        tensor = tensor.detach().contiguous()
        n = tensor.numel()
        s1, s2 = _kernel_sums(tensor)
        peak, near = _max_and_near_zero(tensor, threshold)
    return LayerStats(
        name=name, shape=tuple(tensor.shape), dtype=str(tensor.dtype).replace("torch.", ""),
        params=n, l1_sum=s1, l2_sum=s2, rms=math.sqrt(s2 / n) if n else 0.0,
        max_abs=peak, near_zero=near, near_zero_share=near / n if n else 0.0,
        penalty=l1 * s1 + l2 * s2, penalty_share=None,
        excluded=exclude and models.is_excluded(name, tuple(tensor.shape)),
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
