"""--plot FILE: the penalty share of every tensor, named, and weight histograms of the largest
tensors. matplotlib is an optional extra (pip install fastpenalty[plot])."""

from __future__ import annotations

import os

from .errors import ProfileError
from .outputs import write_atomically
from .terminal import safe_text

_NAMED_BARS = 80  # beyond this many tensors, only the largest shares are named


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ProfileError("--plot needs matplotlib: pip install fastpenalty[plot]") from None
    return plt


def require_matplotlib() -> None:
    _pyplot()


def supported_formats() -> list[str]:
    plt = _pyplot()
    fig = plt.figure()
    try:
        return sorted(fig.canvas.get_supported_filetypes())
    finally:
        plt.close(fig)


def _label(text: str) -> str:
    """Checkpoint text as a literal label: escaped, and '$' not read as mathtext."""
    return safe_text(text).replace("$", r"\$")


def _share_bars(ax, layers) -> None:
    shares = [0.0 if s.excluded else 100 * (s.penalty_share or 0.0) for s in layers]
    kept = [i for i, s in enumerate(layers) if not s.excluded]
    dropped = [i for i, s in enumerate(layers) if s.excluded]
    ax.bar(kept, [shares[i] for i in kept], width=0.85, color="#3a6ea5", label="penalized")
    if dropped:  # no bar: they carry no share; a grey mark on the axis says where they are
        ax.scatter(dropped, [0.0] * len(dropped), marker="x", s=12, color="#999999", zorder=3,
                   clip_on=False, label="excluded (bias, norm): not penalized")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel(f"tensor, in model order ({len(layers)} tensors, {len(dropped)} excluded)")
    ax.set_ylabel("share of the penalty (%)")
    ax.set_xlim(-0.5, len(layers) - 0.5)
    if len(layers) <= _NAMED_BARS:
        ticks = list(range(len(layers)))
    else:  # name the largest shares only, so the labels stay readable
        ticks = sorted(sorted(range(len(layers)), key=lambda i: -shares[i])[:_NAMED_BARS // 2])
    fontsize = 7 if len(ticks) <= 40 else 5
    ax.set_xticks(ticks, [_label(layers[i].name) for i in ticks], rotation=90, fontsize=fontsize)


def write_plot(path: str, layers, samples: dict, source: str) -> None:
    plt = _pyplot()
    shown = [s for s in sorted(layers, key=lambda s: s.params, reverse=True) if s.name in samples]
    fig = plt.figure(figsize=(14, 9), layout="constrained")
    grid = fig.add_gridspec(2, max(len(shown), 1), height_ratios=[1.4, 1])
    share = fig.add_subplot(grid[0, :])
    _share_bars(share, layers)
    share.set_title(_label(f"penalty share per tensor: {source}"), fontsize=10)
    for i, s in enumerate(shown):
        ax = fig.add_subplot(grid[1, i])
        sample = samples[s.name]
        ax.hist(sample, bins=100, color="#888888" if s.excluded else "#3a6ea5")
        what = (f"all {s.params:,} weights" if sample.size == s.params
                else f"sample of {sample.size:,} of {s.params:,} weights")
        ax.set_title(f"{_label(s.name)}{' (excluded)' if s.excluded else ''}\n{what}", fontsize=8)
        ax.set_xlabel("weight value w")
        ax.set_ylabel("count (log scale)")
        ax.set_yscale("log")
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    try:
        write_atomically(path, lambda f: fig.savefig(f, dpi=110, format=fmt), binary=True)
    finally:
        plt.close(fig)
