"""Weight regularization on the classic overfitting study: two moons, a wide MLP, L2 through fastpenalty.

The setting: 100 two-moons samples (noise 0.2, seed 1), only 30 of them for training and 70 for
testing, and a network far too large for them — one hidden layer of 500 ReLU units and a
sigmoid output — trained full-batch with Adam for 4000 epochs. Without a penalty it fits the 30
points and generalizes worse; with L2 = 0.001 on the hidden layer's weights it is pushed toward
smaller weights and a smoother boundary. A grid over 1e-1 ... 1e-6 then shows where the penalty
starts to underfit, and the weight norms show what the penalty did.

The penalty follows the Keras convention: loss = binary cross-entropy + l2 * sum(w^2) over the
hidden layer's weight matrix, added through ``fastpenalty.torch.Penalty``. Biases are not
penalized (Penalty's default exclusion leaves them out), as with Keras's kernel_regularizer on
the hidden Dense layer. The output layer is not penalized either. Weights start Glorot-uniform
and biases at zero, as Keras's Dense does, and every run starts from the same initial weights.

    python examples/moons.py                         # the full study (about a minute on a CPU)
    python examples/moons.py --quick                 # 500 epochs
    python examples/moons.py --plot moons.png        # semilogx plot of the grid (needs matplotlib)
    python examples/moons.py --save-output           # also write examples/moons_output.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from fastpenalty.torch import Penalty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moons_data import load_split, make_moons  # noqa: E402,F401  (shared with moons_keras.py)

GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moons_output.txt")


class MLP(torch.nn.Module):
    """2 -> 500 ReLU -> 1 sigmoid. forward() returns the logit; the sigmoid is applied inside
    the loss (BCEWithLogitsLoss, the numerically stable form) and in predict()."""

    def __init__(self, hidden: int = 500):
        super().__init__()
        self.hidden = torch.nn.Linear(2, hidden)
        self.out = torch.nn.Linear(hidden, 1)
        for layer in (self.hidden, self.out):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x))).squeeze(-1)

    @torch.no_grad()
    def predict(self, x):
        return (torch.sigmoid(self(x)) > 0.5).float()


def accuracy(model: MLP, X, y) -> float:
    return float((model.predict(X) == y).float().mean())


def train(data, l2: float, epochs: int, seed: int = 0, lr: float = 1e-3) -> dict:
    """One full-batch Adam training; l2 = 0 means no penalty. Returns accuracies and norms."""
    X_train, y_train, X_test, y_test = data
    torch.manual_seed(seed)  # the same initial weights for every run
    model = MLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)  # Keras's Adam defaults
    loss_fn = torch.nn.BCEWithLogitsLoss()
    penalty = Penalty(model.hidden, l2=l2) if l2 > 0 else None  # hidden weight only, no bias
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(X_train), y_train)
        if penalty is not None:
            loss = loss + penalty()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return {
            "l2": l2,
            "train_acc": accuracy(model, X_train, y_train),
            "test_acc": accuracy(model, X_test, y_test),
            "hidden_norm": float(model.hidden.weight.norm()),
            "out_norm": float(model.out.weight.norm()),
            "final_loss": float(loss.detach()),
        }


def load_data(n_train: int = 30):
    return tuple(torch.from_numpy(a) for a in load_split(n_train))


def run_study(epochs: int, grid=GRID, l2: float = 1e-3, emit=print) -> dict:
    data = load_data()
    emit(f"two moons: 100 samples, noise 0.2, seed 1; {len(data[0])} for training, "
         f"{len(data[2])} for testing")
    emit(f"MLP 2-500-1 (ReLU, sigmoid), full-batch Adam lr 1e-3, {epochs} epochs, "
         f"binary cross-entropy + l2 * sum(w^2) of the hidden weights (fastpenalty.torch.Penalty)")
    emit("")
    plain = train(data, 0.0, epochs)
    regularized = train(data, l2, epochs)
    for label, r in (("no penalty", plain), (f"L2 = {l2:g}", regularized)):
        emit(f"{label:12s} train accuracy {r['train_acc']:.3f}   test accuracy {r['test_acc']:.3f}")
    emit("")
    emit("weight norms (Frobenius)     hidden 2x500   output 500x1")
    for label, r in (("no penalty", plain), (f"L2 = {l2:g}", regularized)):
        emit(f"  {label:26s} {r['hidden_norm']:12.3f} {r['out_norm']:14.3f}")
    emit("")
    emit("grid search over the L2 factor")
    emit(f"  {'l2':>7s}  {'train acc':>9s}  {'test acc':>8s}  {'hidden |W|':>10s}")
    results = []
    for value in grid:
        r = train(data, value, epochs)
        results.append(r)
        emit(f"  {value:7.0e}  {r['train_acc']:9.3f}  {r['test_acc']:8.3f}  {r['hidden_norm']:10.3f}")
    emit(f"  {'none':>7s}  {plain['train_acc']:9.3f}  {plain['test_acc']:8.3f}  {plain['hidden_norm']:10.3f}")
    return {"plain": plain, "regularized": regularized, "grid": results}


def plot_grid(results: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install fastpenalty[plot]") from None
    grid = results["grid"]
    l2 = [r["l2"] for r in grid]
    fig, (acc, norm) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    acc.semilogx(l2, [r["train_acc"] for r in grid], "o-", label="train")
    acc.semilogx(l2, [r["test_acc"] for r in grid], "s-", label="test")
    acc.set_xlabel("L2 factor")
    acc.set_ylabel("accuracy")
    acc.legend()
    norm.semilogx(l2, [r["hidden_norm"] for r in grid], "o-", label="with L2")
    norm.axhline(results["plain"]["hidden_norm"], color="gray", linestyle="--", label="no penalty")
    norm.set_xlabel("L2 factor")
    norm.set_ylabel("hidden weight norm")
    norm.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4000, help="training epochs (default 4000)")
    parser.add_argument("--quick", action="store_true", help="500 epochs instead of 4000")
    parser.add_argument("--plot", metavar="FILE", help="semilogx plot of the grid search")
    parser.add_argument("--save-output", nargs="?", const=DEFAULT_OUTPUT, metavar="FILE",
                        help=f"also write what is printed to FILE (default {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    epochs = 500 if args.quick else args.epochs
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and runs are reproducible
    lines = []

    def emit(line=""):
        print(line, flush=True)
        lines.append(line)

    start = time.perf_counter()
    results = run_study(epochs, emit=emit)
    emit("")
    emit(f"ran in {time.perf_counter() - start:.0f} s on {platform.machine()} "
         f"(torch {torch.__version__}, one thread)")
    if args.plot:
        plot_grid(results, args.plot)
        print(f"plot written to {args.plot}")
    if args.save_output:
        with open(args.save_output, "w", encoding="utf-8") as f:
            flags = "" if epochs == 4000 else f" --epochs {epochs}"
            f.write(f"$ python examples/moons.py{flags}\n")
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
