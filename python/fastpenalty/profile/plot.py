"""--plot FILE.png: the per-layer penalty share and weight histograms of the largest layers.
matplotlib is an optional extra (pip install fastpenalty[plot])."""

from __future__ import annotations

import numpy as np

from .errors import ProfileError

_HIST_LAYERS = 4
_HIST_SAMPLE = 200_000


def require_matplotlib() -> None:
    _pyplot()


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ProfileError("--plot needs matplotlib: pip install fastpenalty[plot]") from None
    return plt


def _sample(tensor) -> np.ndarray:
    """An evenly strided sample (deterministic, no copy of the whole tensor)."""
    flat = tensor.detach().reshape(-1)
    step = max(1, flat.numel() // _HIST_SAMPLE)
    return flat[::step].float().cpu().numpy()


def write_plot(path: str, layers, tensors: dict, title: str) -> None:
    plt = _pyplot()
    kept = [s for s in layers if not s.excluded]
    largest = sorted(layers, key=lambda s: s.params, reverse=True)[:_HIST_LAYERS]
    fig = plt.figure(figsize=(12, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, max(len(largest), 1))
    share = fig.add_subplot(grid[0, :])
    share.bar(range(len(kept)), [100 * (s.penalty_share or 0.0) for s in kept], width=0.9)
    share.set_xlabel("penalized tensor (model order)")
    share.set_ylabel("share of the penalty (%)")
    share.set_title(title)
    if len(kept) <= 40:
        share.set_xticks(range(len(kept)), [s.name for s in kept], rotation=90, fontsize=6)
    for i, s in enumerate(largest):
        ax = fig.add_subplot(grid[1, i])
        ax.hist(_sample(tensors[s.name]), bins=100)
        ax.set_title(f"{s.name}\n{s.params:,} weights", fontsize=8)
        ax.set_xlabel("w")
        ax.set_yscale("log")
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise ProfileError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
