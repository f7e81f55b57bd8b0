"""examples/moons.py, shortened: the data construction, and that the L2 penalty through
fastpenalty trains as well as the same penalty written in plain torch and shrinks the weights."""

import importlib.util
import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fastpenalty.torch")

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "moons.py")
EPOCHS = 300


@pytest.fixture(scope="module")
def moons():
    spec = importlib.util.spec_from_file_location("moons_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)


def test_two_moons_construction(moons):
    X, y = moons.make_moons(100, noise=0.2, seed=1)
    assert X.shape == (100, 2) and y.shape == (100,) and X.dtype == np.float32
    assert np.count_nonzero(y == 0) == 50 and np.count_nonzero(y == 1) == 50
    X2, y2 = moons.make_moons(100, noise=0.2, seed=1)
    np.testing.assert_array_equal(X, X2)
    assert not np.array_equal(X, moons.make_moons(100, noise=0.2, seed=2)[0])
    # without noise every point lies on its half circle: outer around (0, 0), inner around (1, 0.5)
    C, labels = moons.make_moons(101, noise=0.0, seed=3)
    outer, inner = C[labels == 0], C[labels == 1]
    assert len(outer) == 50 and len(inner) == 51
    np.testing.assert_allclose(np.hypot(outer[:, 0], outer[:, 1]), 1, atol=1e-6)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1, atol=1e-6)
    assert outer[:, 1].min() >= -1e-6 and inner[:, 1].max() <= 0.5 + 1e-6


@pytest.fixture(scope="module")
def runs(moons):
    data = moons.load_data()
    return {l2: moons.train(data, l2, EPOCHS) for l2 in (0.0, 1e-3, 1e-1)}


def test_split_is_30_train_70_test(moons):
    X_train, y_train, X_test, y_test = moons.load_data()
    assert len(X_train) == len(y_train) == 30 and len(X_test) == len(y_test) == 70


def test_penalty_shrinks_the_hidden_weights(runs):
    plain, l2_small, l2_large = runs[0.0], runs[1e-3], runs[1e-1]
    assert l2_small["hidden_norm"] < plain["hidden_norm"]
    assert l2_large["hidden_norm"] < 0.5 * l2_small["hidden_norm"]
    for r in runs.values():
        assert math.isfinite(r["final_loss"])


def test_both_models_fit_the_training_set(runs):
    assert runs[0.0]["train_acc"] >= 0.9
    assert runs[1e-3]["train_acc"] >= 0.9
    assert runs[0.0]["test_acc"] >= 0.7 and runs[1e-3]["test_acc"] >= 0.7


class _TorchL2:
    """The same penalty in plain torch, standing in for fastpenalty.torch.Penalty."""

    def __init__(self, module, l2):
        self.weight, self.l2 = module.weight, l2

    def __call__(self):
        return self.l2 * (self.weight * self.weight).sum()


def test_fastpenalty_trains_like_the_plain_torch_penalty(moons, runs, monkeypatch):
    monkeypatch.setattr(moons, "Penalty", _TorchL2)
    reference = moons.train(moons.load_data(), 1e-3, EPOCHS)
    mine = runs[1e-3]
    assert mine["hidden_norm"] == pytest.approx(reference["hidden_norm"], rel=1e-3)
    assert mine["out_norm"] == pytest.approx(reference["out_norm"], rel=1e-3)
    assert mine["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-3)
    assert abs(mine["train_acc"] - reference["train_acc"]) <= 1 / 30


def test_command_line_writes_its_output(moons, tmp_path, capsys):
    out = tmp_path / "moons.txt"
    assert moons.main(["--epochs", "20", "--save-output", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("$ python examples/moons.py --epochs 20\n")
    assert text.splitlines()[1:] == printed.splitlines()
    assert "no penalty" in text and "L2 = 0.001" in text
    assert text.count("e-0") >= 6  # one grid row per factor, 1e-01 ... 1e-06
