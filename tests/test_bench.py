"""The benchmark harness: its ratio arithmetic, and smoke runs at tiny sizes that check the CSV
schema, that every figure is finite and that every peer computes the same penalty value.
No timing is asserted."""

import collections
import math
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest

from fastpenalty.benchmarks import cli, cpu_kernels, markdown, targets
from fastpenalty.benchmarks.harness import Candidate, Group, Settings, candidate_metrics, measure_group
from fastpenalty.benchmarks.results import COLUMNS, read_csv

SMOKE = ["--quick", "--repeats", "2", "--warmup", "0"]


def _fake_timer(durations):
    """A timer that calls the function and reports the duration registered for it."""

    def timer(fn):
        fn()
        return durations[fn]

    return timer


def _metric(result, label, metric):
    for provider, variant, name, _unit, samples in candidate_metrics(result):
        if (f"{provider}[{variant}]" if variant else provider) == label and name == metric:
            return samples
    raise KeyError((label, metric))


def test_ratios_pair_each_call_with_the_probes_around_it():
    def probe():
        return None

    def subject():
        return 1.0

    def peer():
        return 1.0

    durations = {probe: 1.0, subject: 2.0, peer: 8.0}
    group = Group(case="c", api="numpy", mode="accumulate", n_elements=10, n_tensors=1, dtype="float32",
                  bytes_per_call=4_000_000_000, probe=Candidate("probe", probe, compare=False),
                  candidates=[Candidate("fastpenalty", subject), Candidate("numpy", peer)])
    result = measure_group(group, Settings(warmup=1, repeats=3, min_repeats=3, max_seconds=1e9),
                           timer=_fake_timer(durations))
    assert result.rounds == 3
    assert len(result.probe_times) == 3 * 3  # probe, fastpenalty, probe, numpy, probe
    assert _metric(result, "fastpenalty", "fraction_of_probe") == [0.5] * 3
    assert _metric(result, "numpy", "fraction_of_probe") == [0.125] * 3
    assert _metric(result, "numpy", "fastpenalty_speedup") == [4.0] * 3
    assert _metric(result, "fastpenalty", "gbps") == [2.0] * 3
    with pytest.raises(KeyError):
        _metric(result, "fastpenalty", "fastpenalty_speedup")


def test_each_round_starts_one_candidate_later():
    calls = []

    def timer(fn):
        calls.append(fn())
        return 1.0

    group = Group(case="c", api="numpy", mode="value", n_elements=1, n_tensors=1, dtype="float32",
                  bytes_per_call=4, probe=Candidate("probe", lambda: "p", compare=False),
                  candidates=[Candidate("fastpenalty", lambda: "a"), Candidate("build", lambda: "b", variant="x"),
                              Candidate("build", lambda: "c", variant="y")])
    measure_group(group, Settings(warmup=0, repeats=4, min_repeats=4, max_seconds=1e9), timer=timer)
    rounds = ["".join(c for c in calls[k * 7:(k + 1) * 7] if c != "p") for k in range(4)]
    assert rounds == ["abc", "bca", "cab", "abc"]
    assert all(set(calls[k * 7:(k + 1) * 7:2]) == {"p"} for k in range(4))  # every call between two probes


def test_a_drifting_probe_is_averaged_around_the_call():
    times = iter([1.0, 4.0, 3.0])  # probe before, candidate, probe after

    def timer(fn):
        fn()
        return next(times)

    group = Group(case="c", api="numpy", mode="value", n_elements=1, n_tensors=1, dtype="float32",
                  bytes_per_call=4, probe=Candidate("probe", lambda: None, compare=False),
                  candidates=[Candidate("fastpenalty", lambda: 1.0)])
    result = measure_group(group, Settings(warmup=0, repeats=1, min_repeats=1), timer=timer)
    assert _metric(result, "fastpenalty", "fraction_of_probe") == [0.5]


def test_a_wrong_value_is_reported_and_a_failing_peer_left_out(capsys):
    def broken():
        raise RuntimeError("no such op here")

    group = Group(case="c", api="numpy", mode="value", n_elements=1, n_tensors=1, dtype="float32",
                  bytes_per_call=4, value_rtol=1e-3,
                  candidates=[Candidate("fastpenalty", lambda: 2.0), Candidate("numpy", lambda: 2.0001),
                              Candidate("torch_eager", lambda: 3.0), Candidate("torch_compile", broken)])
    result = measure_group(group, Settings(warmup=0, repeats=1, min_repeats=1))
    assert [c.label for c in group.candidates] == ["fastpenalty", "numpy", "torch_eager"]
    assert [m[0] for m in result.value_mismatches] == ["torch_eager"]
    assert "torch_compile failed" in capsys.readouterr().err


def _check_csv(path):
    rows = read_csv(path)
    assert rows
    with open(path, encoding="utf-8") as f:
        assert f.readline().strip().split(",") == list(COLUMNS)
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("p20", "p50", "p80")), row
        assert row["p20"] <= row["p50"] <= row["p80"], row
        assert row["repeats"] >= 1 and row["quick"] == 1
        assert row["device"].startswith("cpu: ") and row["fastpenalty_version"]
        if row["metric"] in ("time_s", "gbps", "fraction_of_probe", "fastpenalty_speedup"):
            assert row["p20"] > 0, row
    return rows


def test_cli_smoke_tensor_and_model(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "bench.csv"
    code = cli.main(SMOKE + ["--cases", "tensor-3e4,model-mlp-tiny", "--no-compile", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert "warning" not in captured.err and "mismatch" not in captured.out
    rows = _check_csv(out)
    seen = {(r["case"], r["api"], r["mode"], r["provider"]) for r in rows}
    for case in ("tensor-3e4", "model-mlp-tiny"):
        for api, providers in (("numpy", ("fastpenalty", "numpy", "probe")),
                               ("torch", ("fastpenalty", "torch_eager", "torch_foreach", "probe"))):
            for mode in ("accumulate", "value"):
                for provider in providers:
                    assert (case, api, mode, provider) in seen
    text = markdown.render(rows)
    assert "**tensor-3e4** · numpy · accumulate" in text and "| **fastpenalty** |" in text


def test_cli_smoke_torch_compile_and_keras(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    out = tmp_path / "bench.csv"
    assert cli.main(SMOKE + ["--cases", "tensor-1e3,keras-mlp", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "mismatch" not in captured.out
    rows = _check_csv(out)
    compiled = [r for r in rows if r["provider"] == "torch_compile"]
    assert {r["metric"] for r in compiled} >= {"time_s", "compile_time_s", "fastpenalty_speedup"}
    if "keras-mlp left out" not in captured.err:
        keras_rows = {(r["mode"], r["provider"], r["variant"]) for r in rows if r["case"] == "keras-mlp"}
        assert ("train_step", "keras", "") in keras_rows and ("regularizer", "fastpenalty", "") in keras_rows


def test_cpu_kernel_script_covers_every_isa_and_dtype(tmp_path):
    from fastpenalty import _core

    out = tmp_path / "kernels.csv"
    assert cpu_kernels.main(SMOKE + ["--sizes", "2e4", "--out", str(out)]) == 0
    rows = _check_csv(out)
    fractions = {(r["isa"], r["dtype"], r["mode"]) for r in rows
                 if r["provider"] == "fastpenalty" and r["metric"] == "fraction_of_probe"}
    for isa in _core.available_isas():
        for dtype in ("float32", "float64", "float16", "bfloat16"):
            assert {(isa, dtype, "accumulate"), (isa, dtype, "value")} <= fractions
    numpy_isas = {r["isa"] for r in rows if r["provider"] == "numpy"}
    assert numpy_isas == {_core.best_isa()}


def test_unknown_case_is_a_usage_error(capsys):
    assert cli.main(["--cases", "no-such-case"]) == 2
    assert "no benchmark case matches" in capsys.readouterr().err


def _row(case, api, mode, provider, metric, p50, variant="", n=10**8, isa="avx512"):
    return dict(device="cpu: x", case=case, api=api, mode=mode, provider=provider, variant=variant,
                metric=metric, p50=p50, n_elements=n, dtype="float32", isa=isa)


def test_targets_use_the_fastest_peer_variant_and_skip_small_sizes():
    rows = [
        _row("m", "torch", "accumulate", "fastpenalty", "fraction_of_probe", 0.9),
        _row("m", "torch", "accumulate", "torch_foreach", "fastpenalty_speedup", 7.0, "alloc"),
        _row("m", "torch", "accumulate", "torch_foreach", "fastpenalty_speedup", 4.0, "scratch"),
        _row("m", "torch", "accumulate", "fastpenalty", "fraction_of_probe", 0.5, isa="scalar"),
        _row("s", "numpy", "value", "fastpenalty", "fraction_of_probe", 0.1, n=1000),
    ]
    verdicts = {(v.target.provider, v.case, v.isa): (v.value, v.passed) for v in targets.check(rows)}
    assert verdicts == {("fastpenalty", "m", "avx512"): (0.9, True), ("torch_foreach", "m", "avx512"): (4.0, False),
                        ("fastpenalty", "m", "scalar"): (0.5, False)}


def test_value_has_a_target_against_torch_compile():
    rows = [_row("m", "torch", "value", "torch_compile", "fastpenalty_speedup", 0.98),
            _row("m", "torch", "value", "fastpenalty", "fraction_of_probe", 0.97)]
    verdicts = {(v.target.mode, v.target.provider): (v.value, v.passed) for v in targets.check(rows)}
    assert verdicts[("value", "torch_compile")] == (0.98, False)
    rows[0]["p50"] = 1.3
    assert any(v.passed for v in targets.check(rows) if v.target.provider == "torch_compile")


@pytest.mark.parametrize("script, rows", [("bench_torch_overhead.py", 6), ("bench_numpy_overhead.py", 3)])
def test_host_overhead_scripts_write_a_row_per_call(tmp_path, script, rows):
    """The host-overhead scripts (shared harness: fastpenalty.benchmarks.host_overhead) run at a
    tiny size and write their table: one row per call, every figure finite, the times positive
    (the NumPy table's marginal cost, a difference of two timings, may be of either sign here)."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "table.md"
    subprocess.run([sys.executable, os.path.join(root, "bench", script), "--tensors", "20",
                    "--rounds", "3", "--inner", "2", "--out", str(out)], check=True,
                   capture_output=True, timeout=300)
    body = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert len(body) == rows + 1  # the header
    for line in body[1:]:
        cells = [[float(x) for x in cell.replace("/", " ").split()] for cell in line.split("|")[2:-1]]
        assert all(math.isfinite(x) for cell in cells for x in cell), line
        assert len(cells[0]) == 3 and all(x > 0 for x in cells[0] + cells[-1]), line


@pytest.mark.parametrize("mode,probe", [("accumulate", "torch add_ flat"), ("value", "torch sum flat")])
def test_cpu_kernel_script_can_probe_with_torch(tmp_path, mode, probe):
    """--probe torch: each kernel call is timed against torch's op over the same bytes."""
    out = tmp_path / "kernels.csv"
    assert cpu_kernels.main(SMOKE + ["--sizes", "2e4", "--dtypes", "float32,bfloat16", "--isas", "scalar",
                                     "--probe", "torch", "--out", str(out)]) == 0
    rows = [r for r in _check_csv(out) if r["mode"] == mode]
    assert {r["variant"] for r in rows if r["provider"] == "probe"} == {probe}
    assert {r["dtype"] for r in rows if r["metric"] == "fraction_of_probe"} == {"float32", "bfloat16"}


def test_ab_libraries_times_two_loaded_builds_against_one_probe(tmp_path, capsys):
    """bench/ab_libraries.py with two copies of this build (loaded by path, side by side): a
    row set per library, the second with its speed-up against the first, values compared."""
    import shutil

    from fastpenalty import _cmake
    from fastpenalty.benchmarks import ab_libraries

    paths = []
    for name in ("before", "after"):
        (tmp_path / name).mkdir()
        paths.append(shutil.copy(_cmake.library_path(), tmp_path / name))
    out = tmp_path / "ab.csv"
    code = ab_libraries.main([f"before={paths[0]}", f"after={paths[1]}", "--size", "3e4", "--dtype", "bfloat16",
                              "--mode", "accumulate", "--isa", "scalar", "--threads", "1", *SMOKE,
                              "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "mismatch" not in captured.out and "warning" not in captured.err
    rows = _check_csv(out)
    got = {(r["provider"], r["variant"], r["metric"]) for r in rows}
    assert {("fastpenalty", "before", "fraction_of_probe"), ("build", "after", "fraction_of_probe"),
            ("build", "after", "fastpenalty_speedup"), ("probe", "core g+=w", "time_s")} <= got
    assert {r["isa"] for r in rows} == {"scalar"} and {r["threads"] for r in rows} == {1}
    assert ab_libraries.main([paths[0]]) == 2  # one library: nothing to compare

    code = ab_libraries.main([f"before={paths[0]}", f"after={paths[1]}", "--size", "3e4", "--mode", "value",
                              "--probe", "torch", "--threads", "1", *SMOKE, "--out", str(out)])
    assert code == 0
    rows = _check_csv(out)
    assert {r["variant"] for r in rows if r["provider"] == "probe"} == {"torch sum flat"}
    assert ("build", "after", "fastpenalty_speedup") in {(r["provider"], r["variant"], r["metric"]) for r in rows}


def test_ab_libraries_reports_a_library_that_cannot_load(tmp_path, capsys):
    from fastpenalty.benchmarks import ab_libraries

    missing = tmp_path / "nothing.so"
    assert ab_libraries.main([str(missing), str(missing), *SMOKE]) == 2
    assert "error:" in capsys.readouterr().err


def _ab_by_bandwidth_script():
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("ab_by_bandwidth", os.path.join(root, "bench", "ab_by_bandwidth.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_ab_by_bandwidth_bins_are_the_given_bounds_or_the_run_tertiles():
    script = _ab_by_bandwidth_script()
    bounds = (58.0, 70.0)
    assert [script.bin_of(x, bounds) for x in (0.0, 58.0, 58.1, 70.0, 70.1)] == ["slow", "slow", "mid", "mid", "fast"]
    speeds = [float(x) for x in range(1, 301)]
    low, high = script.bounds_of(speeds)
    counts = collections.Counter(script.bin_of(x, (low, high)) for x in speeds)
    assert counts == {"slow": 100, "mid": 100, "fast": 100}
    assert script.bounds_of(speeds, bounds) == bounds
    assert script.bounds_of([42.0]) == (42.0, 42.0) and script.bounds_of([]) == (0.0, 0.0)
    with pytest.raises(Exception):
        script.parse_bounds("70,58")


def test_ab_by_bandwidth_files_each_call_under_the_probe_before_it(tmp_path, capsys):
    """bench/ab_by_bandwidth.py with two copies of this build: every bin it prints has a finite
    positive ratio for each candidate in it, the torch control's ratio to itself is 1, each
    candidate is called once per round, and the builds compute the same value."""
    import shutil

    from fastpenalty import _cmake

    script = _ab_by_bandwidth_script()
    paths = []
    for name in ("new", "old"):
        (tmp_path / name).mkdir()
        paths.append(shutil.copy(_cmake.library_path(), tmp_path / name))
    for mode in ("value", "accumulate"):
        assert script.main([f"new={paths[0]}", f"old={paths[1]}", "--seconds", "0.3", "--size", "30001",
                            "--dtype", "bfloat16", "--mode", mode, "--threads", "1"]) == 0
        lines = capsys.readouterr().out.splitlines()
        rounds = int(lines[0].split(" rounds;")[0].split()[-1])
        calls = {"torch": 0, "new": 0, "old": 0}
        for cells in (line.split() for line in lines if line.split()[0] in script.BINS):
            names = cells[1::4]
            assert set(names) <= set(calls) and len(set(names)) == len(names)
            assert all(math.isfinite(float(r)) and float(r) > 0 for r in cells[2::4])
            if "torch" in names:
                assert cells[3 + 4 * names.index("torch")] == "1.000"
            for name, count in zip(names, cells[4::4]):
                calls[name] += int(count.strip("()"))
        assert rounds > 0 and calls == {"torch": rounds, "new": rounds, "old": rounds}
        values = [line.split() for line in lines if line.startswith("values ")][0]
        assert values[1::2] == ["new", "old"] and values[2] == values[4]


def test_ab_by_bandwidth_refuses_a_missing_library_in_one_line(tmp_path, capsys):
    script = _ab_by_bandwidth_script()
    assert script.main([f"new={tmp_path / 'nothing.so'}", "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "nothing.so" in err[0]
    assert script.main([str(tmp_path / "unnamed.so"), "--seconds", "0.1"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err


def test_ab_by_bandwidth_forces_the_isa_it_is_given(tmp_path, capsys):
    """On a copy of the library: the one the package loaded keeps its ISA and threads."""
    import shutil

    from fastpenalty import _cmake

    script = _ab_by_bandwidth_script()
    copy = shutil.copy(_cmake.library_path(), tmp_path)
    assert script.main([f"a={copy}", "--isa", "scalar", "--seconds", "0.1", "--size", "1001", "--threads", "1"]) == 0
    assert "1 threads, scalar)" in capsys.readouterr().out.splitlines()[1]
    assert script.main([f"a={copy}", "--isa", "bogus", "--seconds", "0.1"]) == 2
    assert "error:" in capsys.readouterr().err
