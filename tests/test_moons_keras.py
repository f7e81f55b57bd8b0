"""examples/moons_keras.py, shortened to its two main runs (no penalty, L2 = 0.001 on the hidden
kernel; 4000 epochs of model.fit without validation_data, which changes no weight) on the jax
backend, in a fresh process (Keras fixes its backend at import): the accuracies agree with the
recorded output within two test samples, the penalty helps, and it shrinks the hidden weights."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RECORDED = EXAMPLES / "moons_keras_output_jax.txt"
TOLERANCE = 2 / 70 + 1e-9  # two of the 70 test samples (or of the 30 training ones, less)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None or importlib.util.find_spec("jax") is None,
    reason="needs keras and jax")

_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
import keras, moons_keras
data = moons_keras.load_split(30)
runs = {str(l2): moons_keras.train(keras, data, l2, 4000, validate=False) for l2 in (0.0, 1e-3)}
print(json.dumps({k: {m: r[m] for m in ("train_acc", "test_acc", "hidden_norm")} for k, r in runs.items()}))
"""


def _recorded():
    text = RECORDED.read_text(encoding="utf-8")
    pattern = r"^(no penalty|L2 = 0\.001)\s+train accuracy ([0-9.]+)\s+test accuracy ([0-9.]+)"
    rows = {m[0]: (float(m[1]), float(m[2])) for m in re.findall(pattern, text, re.M)}
    assert set(rows) == {"no penalty", "L2 = 0.001"}, text
    assert re.search(r"^ran in \d+ s on \S+", text, re.M), "the recorded output names no machine"
    return rows


def test_moons_keras_reproduces_the_recorded_accuracies(tmp_path):
    pytest.importorskip("fastpenalty.jax", reason="built without the JAX FFI handlers")
    recorded = _recorded()
    env = dict(os.environ, KERAS_BACKEND="jax", KERAS_HOME=str(tmp_path))
    run = subprocess.run([sys.executable, "-W", "ignore", "-c", _RUN, str(EXAMPLES)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    plain, l2 = got["0.0"], got["0.001"]
    for label, r in (("no penalty", plain), ("L2 = 0.001", l2)):
        train_acc, test_acc = recorded[label]
        assert abs(r["train_acc"] - train_acc) <= TOLERANCE, (label, r)
        assert abs(r["test_acc"] - test_acc) <= TOLERANCE, (label, r)
    assert l2["test_acc"] > plain["test_acc"]
    assert l2["hidden_norm"] < 0.5 * plain["hidden_norm"]
