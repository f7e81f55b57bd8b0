"""examples/prox_sparsity.py in a tiny configuration: the proximal form gives the model exact zeros
that the subgradient form does not, at about the same test accuracy; the saved models and the
README table it writes; profile --compare reads the two models."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
EXAMPLE = os.path.join(ROOT, "examples", "prox_sparsity.py")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("prox_sparsity_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_run(example, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("prox_models")
    rows = example.run([1e-3], epochs=300, hidden=16, lr=0.5, seed=0, save_dir=str(save_dir),
                       save_l1=1e-3, emit=lambda *_: None)
    return {r["method"]: r for r in rows}, save_dir


def test_prox_gives_exact_zeros_where_the_subgradient_gives_none(tiny_run):
    rows, _ = tiny_run
    sub, prox = rows["subgradient"], rows["prox"]
    assert prox["zeros"] > 0.2 * prox["total"]
    assert prox["zeros"] > 10 * max(sub["zeros"], 1)
    assert abs(prox["test_acc"] - sub["test_acc"]) <= 0.05


def test_both_models_are_saved_and_profile_compare_shows_the_zeros(tiny_run):
    rows, save_dir = tiny_run
    a, b = save_dir / "subgradient.safetensors", save_dir / "prox.safetensors"
    assert a.exists() and b.exists()
    out = subprocess.run(
        [sys.executable, "-m", "fastpenalty", "profile", "--compare", str(a), str(b),
         "--zero-threshold", "0", "--no-timing", "--json", "-"],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    layers = [r for r in json.loads(out.stdout)["layers"] if not r["excluded"]]
    assert len(layers) == 3  # the three weight matrices
    zeros_a = sum(r["near_zero_share_a"] * r["params_a"] for r in layers)
    zeros_b = sum(r["near_zero_share_b"] * r["params_b"] for r in layers)
    assert round(zeros_a) == rows["subgradient"]["zeros"]
    assert round(zeros_b) == rows["prox"]["zeros"] > zeros_a


def test_write_readme_replaces_only_the_marked_block(example, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nbefore\n{example.BEGIN}\nold table\n{example.END}\nafter\n")
    rows = [{"l1": 3e-4, "method": m, "test_acc": 0.9, "zeros": z, "total": 100, "share": z / 100,
             "near": 0.5} for m, z in (("subgradient", 0), ("prox", 70))]
    example.write_readme(example.table(rows), str(readme))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# title\n\nbefore\n")
    assert text.endswith(f"{example.END}\nafter\n")
    assert "70 / 100 (70.0%)" in text and "0 / 100 (0.0%)" in text


def test_the_readme_has_the_markers_and_a_generated_table(example):
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start, end = text.index(example.BEGIN), text.index(example.END)
    block = text[start:end]
    assert "proximal" in block and "subgradient" in block
