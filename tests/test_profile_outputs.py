"""Outputs of `python -m fastpenalty profile` are checked before any work and written whole or
not at all: an output path that is an input (or one of its shards) is refused, as are FIFOs,
directories, a path given twice and an unknown plot format; the input stays byte-identical."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastpenalty.__main__ import main
from fastpenalty.profile import collect as collect_module
from fastpenalty.profile import writers


def run_profile(capsys, *args):
    code = main(["profile", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "model.npz"
    rng = np.random.default_rng(0)
    np.savez(path, **{"fc.weight": rng.standard_normal((9, 7)).astype(np.float32),
                      "fc.bias": rng.standard_normal(9).astype(np.float32)})
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if the weights are read at all."""
    def refuse(*a, **k):
        raise AssertionError("the weights were read before the outputs were checked")
    monkeypatch.setattr(collect_module, "collect", refuse)


def _one_line_error(code, err, fragment):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastpenalty profile: error:"), err
    assert fragment in lines[0], err


@pytest.mark.parametrize("flag", ["--json", "--csv", "--plot"])
def test_output_onto_the_input_is_refused(npz, capsys, no_work, flag):
    before = digest(npz)
    code, _, err = run_profile(capsys, "--checkpoint", npz, flag, npz)
    _one_line_error(code, err, "is an input file")
    assert digest(npz) == before


def test_output_onto_a_shard_of_a_sharded_set_is_refused(tmp_path, capsys, no_work):
    from safetensors.numpy import save_file
    shards = {"a.safetensors": {"w1": np.ones((3, 4), np.float32)},
              "b.safetensors": {"w2": np.ones((4, 5), np.float32)}}
    for name, tensors in shards.items():
        save_file(tensors, str(tmp_path / name))
    weight_map = {k: name for name, tensors in shards.items() for k in tensors}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    before = digest(tmp_path / "b.safetensors")
    code, _, err = run_profile(capsys, "--checkpoint", tmp_path, "--json", tmp_path / "b.safetensors")
    _one_line_error(code, err, "is an input file")
    assert digest(tmp_path / "b.safetensors") == before


def test_an_output_given_twice_is_refused(npz, tmp_path, capsys, no_work):
    code, _, err = run_profile(capsys, "--checkpoint", npz, "--json", tmp_path / "r.txt",
                               "--csv", tmp_path / "r.txt")
    _one_line_error(code, err, "name the same file")


def test_a_directory_as_output_is_refused(npz, tmp_path, capsys, no_work):
    code, _, err = run_profile(capsys, "--checkpoint", npz, "--json", tmp_path)
    _one_line_error(code, err, "is a directory")


def test_unknown_plot_format_is_refused_before_the_work(npz, tmp_path, capsys, no_work):
    pytest.importorskip("matplotlib")
    code, _, err = run_profile(capsys, "--checkpoint", npz, "--plot", tmp_path / "p.docx")
    _one_line_error(code, err, "unknown image format 'docx'")
    assert not (tmp_path / "p.docx").exists()


def test_unwritable_directory_is_refused_before_the_work(npz, tmp_path, capsys, no_work, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: let access() answer as for a user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real_access(p, mode))
    code, _, err = run_profile(capsys, "--checkpoint", npz, "--json", locked / "r.json")
    _one_line_error(code, err, "is not writable")


def test_a_failing_writer_leaves_the_old_file_and_no_partial_one(npz, tmp_path, capsys, monkeypatch):
    target = tmp_path / "r.csv"
    target.write_text("previous contents\n")

    def half_then_fail(report, out, name):
        out.write("name,shape\n")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(writers, "_fill_csv", half_then_fail)
    code, _, err = run_profile(capsys, "--checkpoint", npz, "--csv", target, "--no-timing")
    assert code == 1 and "No space left on device" in err
    assert target.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "r.csv"]  # no temp file


def test_outputs_are_written_and_named(npz, tmp_path, capsys):
    before = digest(npz)
    code, out, err = run_profile(capsys, "--checkpoint", npz, "--json", tmp_path / "r.json",
                                 "--csv", tmp_path / "r.csv", "--no-timing")
    assert code == 0, err
    assert f"wrote {tmp_path / 'r.json'}" in out and f"wrote {tmp_path / 'r.csv'}" in out
    assert [d["name"] for d in json.loads((tmp_path / "r.json").read_text())["layers"]] == \
        ["fc.weight", "fc.bias"]
    assert digest(npz) == before


def _fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _profile_process(*args):
    # a regression hangs on open(); the timeout turns that into a failure
    return subprocess.run([sys.executable, "-m", "fastpenalty", "profile", *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def test_json_to_a_fifo_is_refused(npz, tmp_path):
    proc = _profile_process("--checkpoint", npz, "--json", _fifo(tmp_path), "--no-timing")
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and proc.stderr.count("\n") == 1


def test_checkpoint_from_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "weights.npz"
    os.mkfifo(fifo)
    proc = _profile_process("--checkpoint", fifo, "--no-timing")
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr and proc.stderr.count("\n") == 1


def test_checkpoint_from_a_device_is_refused(capsys):
    code, _, err = run_profile(capsys, "--checkpoint", "/dev/zero")
    _one_line_error(code, err, "not a regular file")
