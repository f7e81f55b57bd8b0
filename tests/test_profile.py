"""`python -m fastpenalty profile`: the facts it reports against NumPy, the three checkpoint
formats, and one-line errors. Most runs go through fastpenalty.__main__.main in-process (an
exception would fail the test just as a traceback would); a few go through a real subprocess."""

import csv
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastpenalty import models  # noqa: E402
from fastpenalty.__main__ import main  # noqa: E402
from fastpenalty.profile.progress import Progress  # noqa: E402

L1, L2, THRESHOLD = 0.003, 0.02, 0.01


def run_profile(capsys, *args):
    """(exit code, stdout, stderr) of an in-process `python -m fastpenalty profile ARGS`."""
    code = main(["profile", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_subprocess(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastpenalty", "profile", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def expected_layer(name, w, excluded):
    """The per-layer facts, computed independently in float64 NumPy."""
    w = np.asarray(w, dtype=np.float64)
    s1, s2 = np.abs(w).sum(), np.square(w).sum()
    return {"params": w.size, "l1_sum": s1, "l2_sum": s2, "rms": math.sqrt(s2 / w.size),
            "max_abs": np.abs(w).max(), "near_zero": int(np.count_nonzero(np.abs(w) <= THRESHOLD)),
            "penalty": L1 * s1 + L2 * s2, "excluded": excluded, "shape": list(w.shape)}


def check_layers(layers, arrays, rtol):
    """arrays: name -> float64-convertible array. Checks every stat and the penalty shares."""
    assert [d["name"] for d in layers] == list(arrays)
    for d in layers:
        w = arrays[d["name"]]
        want = expected_layer(d["name"], w, models.is_excluded(d["name"], w.shape))
        for key in ("params", "near_zero", "excluded", "shape"):
            assert d[key] == want[key], (d["name"], key)
        for key in ("l1_sum", "l2_sum", "rms", "max_abs", "penalty"):
            assert d[key] == pytest.approx(want[key], rel=rtol, abs=1e-12), (d["name"], key)
        assert d["near_zero_share"] == pytest.approx(want["near_zero"] / want["params"])
    total = sum(d["penalty"] for d in layers if not d["excluded"])
    for d in layers:
        if d["excluded"]:
            assert d["penalty_share"] is None
        else:
            assert d["penalty_share"] == pytest.approx(d["penalty"] / total)


def test_json_and_csv_match_numpy(tmp_path, capsys):
    js, cs = tmp_path / "p.json", tmp_path / "p.csv"
    code, out, err = run_profile(capsys, "--model", "mlp-tiny", "--l1", L1, "--l2", L2,
                                 "--zero-threshold", THRESHOLD, "--seed", 5, "--json", js, "--csv", cs)
    assert code == 0, err
    report = json.loads(js.read_text())
    arrays = models.materialize("mlp-tiny", seed=5, backend="numpy")
    check_layers(report["layers"], arrays, rtol=1e-5)
    assert [d["excluded"] for d in report["layers"]] == [False, True, True, True, False, True]

    t = report["totals"]
    all_w = np.concatenate([a.ravel().astype(np.float64) for a in arrays.values()])
    assert t["params"] == all_w.size == models.num_parameters("mlp-tiny")
    assert t["tensors"] == 6 and t["penalized_tensors"] == 2 and t["excluded_tensors"] == 4
    assert t["penalized_params"] == arrays["fc1.weight"].size + arrays["fc2.weight"].size
    assert t["l1_sum"] == pytest.approx(np.abs(all_w).sum(), rel=1e-5)
    assert t["max_abs"] == pytest.approx(np.abs(all_w).max())
    assert t["near_zero"] == np.count_nonzero(np.abs(all_w) <= THRESHOLD)
    kept = [arrays["fc1.weight"], arrays["fc2.weight"]]
    want_penalty = sum(L1 * np.abs(w.astype(np.float64)).sum() + L2 * np.square(w.astype(np.float64)).sum()
                       for w in kept)
    assert t["penalty"] == pytest.approx(want_penalty, rel=1e-5)

    timing = report["timing"]
    assert timing["tensors"] == 2 and timing["repeats"] == 5
    assert timing["fused_s"] > 0 and timing["eager_s"] > 0
    assert timing["eager_over_fused"] == pytest.approx(timing["eager_s"] / timing["fused_s"])
    assert timing["fused_value"] == pytest.approx(want_penalty, rel=1e-5)
    assert timing["eager_value"] == pytest.approx(want_penalty, rel=1e-4)

    rows = list(csv.DictReader(io.StringIO(cs.read_text())))
    assert [r["name"] for r in rows] == list(arrays) + ["(total)"]
    for row, d in zip(rows, report["layers"]):
        assert row["shape"] == "x".join(map(str, d["shape"]))
        assert int(row["params"]) == d["params"] and int(row["near_zero"]) == d["near_zero"]
        for key in ("l1_sum", "l2_sum", "rms", "max_abs", "penalty"):
            assert float(row[key]) == pytest.approx(d[key], rel=1e-12)
        assert row["excluded"] == str(d["excluded"])
        assert row["penalty_share"] == ("" if d["excluded"] else str(d["penalty_share"]))
    assert float(rows[-1]["penalty"]) == pytest.approx(t["penalty"], rel=1e-12)

    # the table on stdout carries the same layers, the totals and the timing line
    for name in arrays:
        assert name in out
    assert "excluded" in out and "eager/fused" in out and "5,852" in out


def test_no_exclude_penalizes_everything(tmp_path, capsys):
    js = tmp_path / "p.json"
    code, _, err = run_profile(capsys, "--model", "mlp-tiny", "--no-exclude", "--no-timing", "--json", js)
    assert code == 0, err
    report = json.loads(js.read_text())
    assert not any(d["excluded"] for d in report["layers"])
    assert report["totals"]["penalty"] == pytest.approx(sum(d["penalty"] for d in report["layers"]))
    assert report["timing"] is None


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_dtype_option(tmp_path, capsys, dtype):
    js = tmp_path / "p.json"
    code, _, err = run_profile(capsys, "--model", "mlp-tiny", "--dtype", dtype, "--l1", L1, "--l2", L2,
                               "--zero-threshold", THRESHOLD, "--no-timing", "--json", js)
    assert code == 0, err
    layers = json.loads(js.read_text())["layers"]
    assert {d["dtype"] for d in layers} == {dtype}
    tensors = models.materialize("mlp-tiny", dtype=dtype)
    check_layers(layers, {k: v.double().numpy() for k, v in tensors.items()},
                 rtol=1e-12 if dtype == "float64" else 1e-5)


def test_table_sort_and_top(capsys):
    code, out, _ = run_profile(capsys, "--model", "mlp-tiny", "--sort", "params", "--top", 2, "--no-timing")
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("name"))
    rows = [line.split()[0] for line in lines[start + 2:start + 4]]
    assert rows == ["fc1.weight", "fc2.weight"]
    assert "norm.weight" not in out and "table shows 2 of 6 tensors" in out


def _checkpoint_tensors():
    g = torch.Generator().manual_seed(11)
    return {
        "encoder.0.weight": torch.randn(33, 17, generator=g) * 0.05,
        "encoder.0.bias": torch.randn(33, generator=g),
        "encoder.norm.weight": torch.ones(33),
        "head.weight": (torch.randn(5, 33, generator=g) * 0.2).to(torch.bfloat16),
        "head.kernel64": torch.randn(4, 4, 3, generator=g, dtype=torch.float64),
    }


def _save(fmt, path, tensors):
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file(tensors, str(path))
    elif fmt == "pt":
        extra = {"bn.running_mean": torch.zeros(3), "bn.num_batches_tracked": torch.tensor(7)}
        torch.save({"epoch": 3, "state_dict": {**tensors, **extra}, "optimizer": {"lr": 0.1}}, path)
    else:
        np.savez(path, **{k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
                         for k, v in tensors.items()}, step=np.arange(3))


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "npz"])
def test_checkpoint_formats(tmp_path, capsys, fmt):
    tensors = _checkpoint_tensors()
    path = tmp_path / f"model.{fmt}"
    _save(fmt, path, tensors)
    js = tmp_path / "p.json"
    code, out, err = run_profile(capsys, "--checkpoint", path, "--l1", L1, "--l2", L2,
                                 "--zero-threshold", THRESHOLD, "--json", js, "--repeat", 2)
    assert code == 0, err
    report = json.loads(js.read_text())
    layers = report["layers"]
    names = [d["name"] for d in layers]
    assert sorted(names) == sorted(tensors)  # wrappers, buffers and non-float arrays are not weights
    check_layers(layers, {n: tensors[n].double().numpy() for n in names}, rtol=1e-5)
    dtypes = {d["name"]: d["dtype"] for d in layers}
    assert dtypes["head.weight"] == ("float32" if fmt == "npz" else "bfloat16")
    assert dtypes["head.kernel64"] == "float64"
    skipped = {d["name"] for d in report["skipped"]}
    assert skipped == {"pt": {"bn.running_mean", "bn.num_batches_tracked"}, "npz": {"step"},
                       "safetensors": set()}[fmt]
    assert report["source"]["checkpoint"] == str(path) and report["source"]["model"] is None
    assert report["timing"]["tensors"] == 3  # encoder.0.weight, head.weight, head.kernel64
    assert str(path) in out


@pytest.mark.parametrize("make, args, fragment", [
    (None, ["--checkpoint", "{tmp}/missing.safetensors"], "no such file"),
    (None, ["--checkpoint", "{tmp}"], "is a directory"),
    (None, ["--model", "gpt5"], "unknown model 'gpt5'"),
    (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxx", ["--checkpoint", "{tmp}/bad.safetensors"],
     "cannot read"),
    (b"", ["--checkpoint", "{tmp}/bad.safetensors"], "cannot read"),
    (b"not a pickle at all" * 4, ["--checkpoint", "{tmp}/bad.pt"], "cannot read"),
    (b"PK\x03\x04 truncated", ["--checkpoint", "{tmp}/bad.npz"], "cannot read"),
    (b"x", ["--checkpoint", "{tmp}/weights.onnx"], "unknown checkpoint format"),
    (b"x", ["--checkpoint", "{tmp}/bad.weights.h5"], "cannot read"),
    (None, ["--model", "mlp-tiny", "--l2", "-1"], "--l2 must be finite and >= 0"),
    (None, ["--model", "mlp-tiny", "--json", "{tmp}/no/such/dir/p.json", "--no-timing"], "cannot write"),
])
def test_errors_are_one_line(tmp_path, capsys, make, args, fragment):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if make is not None:
        with open(args[-1], "wb") as f:
            f.write(make)
    code, out, err = run_profile(capsys, *args)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastpenalty profile: error:") and fragment in lines[0]
    assert "Traceback" not in out + err


def test_pickled_module_is_refused_clearly(tmp_path, capsys):
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(3, 2), path)
    code, _, err = run_profile(capsys, "--checkpoint", path)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "state_dict" in err


@pytest.mark.parametrize("args, fragment", [
    (["--checkpoint", "/nonexistent/dir/model.safetensors"], "no such file"),
    (["--model", "no-such-model"], "unknown model"),
])
def test_errors_in_a_real_process(args, fragment):
    proc = run_subprocess(*args)
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_default_run_needs_no_arguments():
    proc = run_subprocess()
    assert proc.returncode == 0, proc.stderr
    assert "gpt2-small" in proc.stdout and "124,439,808" in proc.stdout
    for fragment in ("148 tensors", "wte.weight", "h.11.mlp.c_proj.weight", "excluded"):
        assert fragment in proc.stdout
    assert "eager/fused" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_plot(tmp_path, capsys):
    png = tmp_path / "profile.png"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        code, _, err = run_profile(capsys, "--model", "mlp-tiny", "--plot", png)
        assert code != 0 and "pip install fastpenalty[plot]" in err
        assert len(err.strip().splitlines()) == 1 and not png.exists()
        return
    code, _, err = run_profile(capsys, "--model", "mlp-tiny", "--plot", png, "--no-timing")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


class _FakeTerminal(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(tty):
    stream = _FakeTerminal(tty)
    with Progress("work", 10, stream=stream, delay=0.0) as bar:
        bar.last_draw -= 1.0  # allow an immediate redraw
        bar.advance(5)
    assert ("50.0%" in stream.getvalue()) is tty


def test_progress_bar_waits_a_second():
    stream = _FakeTerminal(True)
    with Progress("work", 10, stream=stream) as bar:  # default delay: 1 s
        bar.advance(10)
    assert stream.getvalue() == ""


def test_python_dash_m_profile_package_entry_point():
    # `python -m fastpenalty.profile` is the same command
    proc = subprocess.run([sys.executable, "-m", "fastpenalty.profile", "--list-models"],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "gpt2-small" and "resnet50" in proc.stdout
