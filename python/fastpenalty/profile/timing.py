"""The timing line: fastpenalty's fused multi-tensor pass next to the eager torch way,
over the same (penalized) parameters, median of a few runs after one warm-up each."""

from __future__ import annotations

import statistics
import time


def _fused(tensors):
    """(callable, label): value_many on the torch tensors when fastpenalty.torch is there,
    else on zero-copy NumPy views (CPU)."""
    import fastpenalty
    try:
        import fastpenalty.torch.functional  # noqa: F401  - the torch path of value_many
        inputs, label = list(tensors), "fastpenalty.value_many (torch)"
    except ImportError:
        if any(t.device.type != "cpu" for t in tensors):
            raise
        from .stats import kernel_input
        inputs, label = [kernel_input(t) for t in tensors], "fastpenalty.value_many (numpy views)"
    return (lambda l1, l2: fastpenalty.value_many(inputs, l1=l1, l2=l2)), label


def _eager(tensors):
    def run(l1, l2):
        return l1 * sum(p.abs().sum() for p in tensors) + l2 * sum((p * p).sum() for p in tensors)
    return run


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
            progress(1)
    return statistics.median(times), float(value)


def time_passes(tensors: list, l1: float, l2: float, repeats: int, progress=None) -> dict | None:
    import torch
    tensors = [t.detach() for t in tensors]
    if not tensors:
        return None
    cuda = any(t.device.type == "cuda" for t in tensors)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fused, label = _fused(tensors)
    with torch.no_grad():
        fused_s, fused_value = _median_seconds(fused, l1, l2, repeats, sync, progress)
        eager_s, eager_value = _median_seconds(_eager(tensors), l1, l2, repeats, sync, progress)
    return {
        "repeats": repeats,
        "tensors": len(tensors),
        "elements": sum(t.numel() for t in tensors),
        "fused": label,
        "fused_s": fused_s,
        "fused_value": fused_value,
        "eager": "torch eager: l1*sum(p.abs().sum()) + l2*sum((p*p).sum())",
        "eager_s": eager_s,
        "eager_value": eager_value,
        "eager_over_fused": eager_s / fused_s if fused_s > 0 else None,
    }
