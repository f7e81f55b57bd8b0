"""The README's Keras snippet runs as written (in a fresh process: it chooses Keras's backend),
and `import fastpenalty.keras` with no backend chosen and no TensorFlow gives fastpenalty's
message, not Keras's "No module named 'tensorflow'"."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")


def _snippet():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- test:keras-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README has no Keras snippet between the test:keras-snippet markers"
    return block.group(1)


def _run(code, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environ.update(KERAS_HOME=str(tmp_path), **env)  # no ~/.keras/keras.json of this machine
    return subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=environ, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("backend", [None, "jax"])
def test_readme_keras_snippet_runs(backend, tmp_path):
    if backend == "jax" and importlib.util.find_spec("jax") is None:
        pytest.skip("needs jax")
    run = _run(_snippet(), tmp_path, **({"KERAS_BACKEND": backend} if backend else {}))
    assert run.returncode == 0, run.stderr[-3000:]
    losses = [float(v) for v in re.findall(r"[-+0-9.e]+", run.stdout.strip().splitlines()[-1])]
    assert len(losses) == 2 and all(v > 0 for v in losses), run.stdout


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed")
def test_import_without_a_backend_says_how_to_choose_one(tmp_path):
    run = _run("import fastpenalty.keras", tmp_path)
    assert run.returncode != 0
    assert "fastpenalty.keras: Keras 3 was started on its default backend, TensorFlow" in run.stderr
    assert "KERAS_BACKEND" in run.stderr
    assert "No module named 'tensorflow'" not in run.stderr
