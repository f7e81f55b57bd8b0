"""fastpenalty.keras on every Keras backend it has kernels for. Keras fixes its backend at
import (KERAS_BACKEND), so the Keras test files run again, each backend in its own process:
jax (fastpenalty.jax's XLA FFI calls) and numpy (the NumPy API). This process runs them on
torch (or whatever KERAS_BACKEND says)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="needs keras")

TESTS = Path(__file__).resolve().parent
FILES = ["test_keras.py", "test_keras_kernels.py", "test_keras_parity.py"]


@pytest.mark.parametrize("backend", ["jax", "numpy"])
def test_keras_tests_pass_on_backend(backend):
    if backend == "jax":
        pytest.importorskip("fastpenalty.jax", reason="needs jax and the JAX FFI handlers")
    env = dict(os.environ, KERAS_BACKEND=backend)
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-W", "ignore",
           *[str(TESTS / f) for f in FILES]]
    run = subprocess.run(cmd, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, f"KERAS_BACKEND={backend}: {summary}\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert " passed" in summary
