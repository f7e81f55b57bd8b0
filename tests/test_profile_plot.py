"""--plot: named bars, labelled axes, excluded tensors drawn apart, honest sample titles, a
"wrote FILE" line, and names that matplotlib would read as mathtext ($...$) shown literally."""

import numpy as np
import pytest

from fastpenalty.__main__ import main

plt = pytest.importorskip("matplotlib.pyplot")


def _figure_texts(monkeypatch):
    """Captures the figure write_plot saves, to read its labels back."""
    from fastpenalty.profile import plot
    seen = {}
    original = plot.write_atomically

    def keep(path, write, binary=False):
        seen["fig"] = plt.gcf()
        original(path, write, binary)
    monkeypatch.setattr(plot, "write_atomically", keep)
    monkeypatch.setattr(plt, "close", lambda fig=None: None)
    return seen


def test_plot_names_labels_and_samples(tmp_path, capsys, monkeypatch):
    seen = _figure_texts(monkeypatch)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", **{"big.weight": rng.standard_normal((700, 500)).astype(np.float32),
                                    "$x$.weight": rng.standard_normal((3, 4)).astype(np.float32),
                                    "big.bias": rng.standard_normal(700).astype(np.float32)})
    png = tmp_path / "p.png"
    code = main(["profile", "--checkpoint", str(tmp_path / "m.npz"), "--plot", str(png), "--no-timing"])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    share, *hists = seen["fig"].axes
    assert [t.get_text() for t in share.get_xticklabels()] == ["big.weight", r"\$x\$.weight", "big.bias"]
    assert share.get_ylabel() == "share of the penalty (%)" and "1 excluded" in share.get_xlabel()
    assert len(share.patches) == 2  # bars for the two penalized tensors only; big.bias is a mark
    titles = [ax.get_title() for ax in hists]
    assert titles[0] == "big.weight\nsample of 175,000 of 350,000 weights"
    assert "big.bias (excluded)\nall 700 weights" in titles
    assert all(ax.get_xlabel() == "weight value w" and "count" in ax.get_ylabel() for ax in hists)
