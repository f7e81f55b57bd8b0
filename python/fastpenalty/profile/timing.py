"""The timing line: fastpenalty's fused multi-tensor pass next to the eager way (torch when it is
installed, else NumPy), over the same penalized weights, median of a few runs after one warm-up
each. A sharded set is timed shard by shard while each is in memory; the medians are summed."""

from __future__ import annotations

import math
import statistics
import time


def _torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _eager(weights, torch):
    if torch is None:
        import numpy as np

        def numpy_run(l1, l2):
            return (l1 * sum(float(np.abs(p).sum()) for p in weights)
                    + l2 * sum(float((p * p).sum()) for p in weights))
        return numpy_run, "NumPy eager: l1*sum(abs(p).sum()) + l2*sum((p*p).sum())"
    from .arrays import to_torch
    tensors = [w if isinstance(w, torch.Tensor) else to_torch(w) for w in weights]

    def torch_run(l1, l2):
        with torch.no_grad():
            return (l1 * sum(p.abs().sum() for p in tensors)
                    + l2 * sum((p * p).sum() for p in tensors))
    return torch_run, "torch eager: l1*sum(p.abs().sum()) + l2*sum((p*p).sum())"


def _median_seconds(fn, l1, l2, repeats, sync, progress):
    fn(l1, l2)  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(l1, l2)
        sync()
        times.append(time.perf_counter() - start)
    if progress is not None:
        progress()
    return statistics.median(times), float(value)


def time_passes(weights: list, l1: float, l2: float, repeats: int, progress=None) -> dict | None:
    """Timing of one resident group of weights (a shard, or the whole model)."""
    import fastpenalty
    if not weights:
        return None
    torch = _torch_or_none()
    cuda = torch is not None and any(isinstance(w, torch.Tensor) and w.is_cuda for w in weights)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    on_torch = torch is not None and isinstance(weights[0], torch.Tensor)
    label = f"fastpenalty.value_many ({'torch' if on_torch else 'numpy'})"
    eager, eager_label = _eager(weights, torch)
    fused_s, fused_value = _median_seconds(lambda a, b: fastpenalty.value_many(weights, l1=a, l2=b),
                                           l1, l2, repeats, sync, progress)
    eager_s, eager_value = _median_seconds(eager, l1, l2, repeats, sync, progress)
    return {
        "repeats": repeats, "groups": 1, "tensors": len(weights),
        "elements": sum(math.prod(w.shape) for w in weights),
        "fused": label, "fused_s": fused_s, "fused_value": fused_value,
        "eager": eager_label, "eager_s": eager_s, "eager_value": eager_value,
    }


def combine(parts: list) -> dict | None:
    """One timing record from the per-shard ones (times and values summed)."""
    parts = [p for p in parts if p]
    if not parts:
        return None
    total = dict(parts[0])
    for p in parts[1:]:
        for key in ("groups", "tensors", "elements", "fused_s", "fused_value", "eager_s", "eager_value"):
            total[key] += p[key]
    total["eager_over_fused"] = total["eager_s"] / total["fused_s"] if total["fused_s"] > 0 else None
    return total
