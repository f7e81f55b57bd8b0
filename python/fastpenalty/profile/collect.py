"""The one pass over the weights: a shard at a time, a tensor at a time. Each tensor's statistics
are computed as it is read; only the current shard's penalized weights stay in memory (for the
timing), and only a small sample of the largest tensors is kept for the plot."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import stats
from .arrays import prepare
from .errors import ProfileError
from .progress import Progress
from .sources import Source

_PLOT_LAYERS = 4
_PLOT_SAMPLE = 200_000


@dataclass
class Collected:
    layers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (name, reason)
    timing: dict | None = None
    samples: dict = field(default_factory=dict)  # name -> NumPy float32 sample


def _sample(w):
    """An evenly strided sample of at most _PLOT_SAMPLE values (deterministic)."""
    import numpy as np
    flat = w.reshape(-1)
    step = max(1, -(-flat.shape[0] // _PLOT_SAMPLE))
    part = flat[::step]
    if hasattr(part, "cpu"):
        part = part.float().cpu().numpy()
    return np.asarray(part, dtype=np.float32)


def _keep_sample(samples: dict, by_size: list, layer, w) -> None:
    """Keeps samples of the _PLOT_LAYERS largest tensors seen so far."""
    by_size.append(layer)
    by_size.sort(key=lambda s: s.params, reverse=True)
    if any(s is layer for s in by_size[:_PLOT_LAYERS]):
        samples[layer.name] = _sample(w)
    for dropped in by_size[_PLOT_LAYERS:]:
        samples.pop(dropped.name, None)
    del by_size[_PLOT_LAYERS:]


def _guarded(path, kind: str, items):
    """The reader's items; any failure of the reader becomes one line naming the file."""
    import re
    try:
        yield from items
    except (ProfileError, MemoryError):
        raise
    except Exception as exc:
        detail = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split()) or type(exc).__name__
        raise ProfileError(f"cannot read {path} as {kind}: {detail[:300]}") from None


def collect(source: Source, args, want_samples: bool) -> Collected:
    from .timing import combine, time_passes
    out = Collected()
    by_name, by_size, timings = {}, [], []
    label = f"generating {source.generated}" if source.generated else "reading"
    with Progress(label, max(source.total_bytes, 1)) as bar:
        for path, items in source.shards():
            resident = []
            for item in _guarded(path, source.kind, items):
                if item.skip is not None:
                    out.skipped.append((item.name, item.skip))
                elif item.tied_to is not None:
                    by_name[item.tied_to].tied.append(item.name)
                else:
                    bar.advance(item.array.nbytes)
                    w = prepare(item.array, args.dtype, args.device)
                    layer = stats.layer_stats(item.name, w, args.l1, args.l2, args.zero_threshold,
                                              exclude=not args.no_exclude)
                    out.layers.append(layer)
                    by_name[item.name] = layer
                    if want_samples:
                        _keep_sample(out.samples, by_size, layer, w)
                    if not args.no_timing and not layer.excluded:
                        resident.append(w)
                    del w
                del item
            if resident:
                timings.append(time_passes(resident, args.l1, args.l2, args.repeat))
            del resident
    out.timing = combine(timings)
    source.check_index({s.name for s in out.layers} | {n for s in out.layers for n in s.tied}
                       | {n for n, _ in out.skipped})
    return out


def profile_source(source: Source, args, want_samples: bool = False):
    """(Collected, totals) of a source, refusing one without a single float weight."""
    from .terminal import safe_text
    collected = collect(source, args, want_samples)
    if not collected.layers:
        raise ProfileError(f"{safe_text(source.label)} holds no floating-point weights")
    stats.fill_shares(collected.layers)
    return collected, stats.totals(collected.layers)
