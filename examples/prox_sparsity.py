"""Subgradient L1 against proximal L1: the same MLP, the same l1, lr, epochs and seed.

Tutorials promise that L1 "drives weights to zero". With the gradient form every framework
implements (loss + l1 * sum|w|, gradient l1 * sign(w)), a weight that the step pushes across
zero lands on the other side and oscillates around 0: almost none is ever exactly 0. The
proximal step (fastpenalty.torch.Penalty.attach_prox, after every optimizer step
w <- sign(w) * max(|w| - lr*l1, 0)) sets every weight it shrinks past zero to exactly 0.

The setting: two-moons data (examples/moons_data.py: noise 0.2, seed 1; 400 samples, half for
training, half for testing), a 2-64-64-1 ReLU MLP, full-batch SGD, the L1 penalty on its three
weight matrices (Penalty's default rule leaves the biases out), trained
  (a) subgradient: loss = bce + penalty()           (fastpenalty.torch.Penalty, Keras's form)
  (b) proximal:    loss = bce; penalty.attach_prox(optimizer)
for each l1 of the sweep, from the same initial weights.

    python examples/prox_sparsity.py                      # the sweep (well under a minute)
    python examples/prox_sparsity.py --write-readme       # also rewrite the README table
    python examples/prox_sparsity.py --save-dir DIR       # the two models of the README's l1 as
        DIR/subgradient.safetensors and DIR/prox.safetensors, for
        python -m fastpenalty profile --compare DIR/subgradient.safetensors DIR/prox.safetensors \
            --zero-threshold 0 --no-timing
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time

import torch

from fastpenalty.torch import Penalty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moons_data import make_moons  # noqa: E402

SWEEP = (1e-4, 3e-4, 1e-3)
README_L1 = 3e-4  # the l1 whose two models are saved and shown with profile --compare
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BEGIN = "<!-- prox_sparsity:begin (written by examples/prox_sparsity.py --write-readme) -->"
END = "<!-- prox_sparsity:end -->"
NEAR_ZERO = 1e-3  # profile's default --zero-threshold


class MLP(torch.nn.Sequential):
    def __init__(self, hidden: int):
        super().__init__(torch.nn.Linear(2, hidden), torch.nn.ReLU(),
                         torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                         torch.nn.Linear(hidden, 1))


def load_data(n_samples: int = 400):
    X, y = make_moons(n_samples, noise=0.2, seed=1)
    half = n_samples // 2
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    return X[:half], y[:half], X[half:], y[half:]


def train(data, l1: float, method: str, epochs: int, hidden: int, lr: float, seed: int):
    """One full-batch SGD run; method is "subgradient" or "prox". Returns (model, penalty)."""
    X_train, y_train, _, _ = data
    torch.manual_seed(seed)  # the same initial weights for every run
    model = MLP(hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    penalty = Penalty(model, l1=l1)
    if method == "prox":
        penalty.attach_prox(optimizer)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(X_train).squeeze(-1), y_train)
        if method == "subgradient":
            loss = loss + penalty()
        loss.backward()
        optimizer.step()
    return model, penalty


@torch.no_grad()
def measure(model, penalty, data) -> dict:
    _, _, X_test, y_test = data
    accuracy = float(((model(X_test).squeeze(-1) > 0).float() == y_test).float().mean())
    weights = penalty.parameters
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    near = sum(int((w.abs() <= NEAR_ZERO).sum()) for w in weights)
    return {"test_acc": accuracy, "zeros": zeros, "total": total, "share": zeros / total,
            "near": near / total}


def run(sweep, epochs: int, hidden: int, lr: float, seed: int, save_dir=None, save_l1=README_L1,
        emit=print):
    data = load_data()
    rows = []
    for l1 in sweep:
        for method in ("subgradient", "prox"):
            model, penalty = train(data, l1, method, epochs, hidden, lr, seed)
            r = measure(model, penalty, data)
            rows.append({"l1": l1, "method": method, **r})
            emit(f"l1 {l1:g}  {method:12s} test accuracy {r['test_acc']:.3f}   exact zeros "
                 f"{r['zeros']}/{r['total']} ({100 * r['share']:.1f}%)   |w| <= {NEAR_ZERO:g} "
                 f"{100 * r['near']:.1f}%")
            if save_dir is not None and l1 == save_l1:
                save(model, os.path.join(save_dir, f"{method}.safetensors"))
    return rows


def save(model, path: str) -> None:
    from safetensors.torch import save_file

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


def table(rows) -> str:
    lines = ["| l1 | L1 form | test accuracy | exact zeros in the penalized weights | "
             f"\\|w\\| <= {NEAR_ZERO:g} |", "|---:|---|---:|---:|---:|"]
    for r in rows:
        form = "subgradient (`loss + penalty()`)" if r["method"] == "subgradient" else \
            "proximal (`penalty.attach_prox(opt)`)"
        lines.append(f"| {r['l1']:g} | {form} | {r['test_acc']:.3f} | "
                     f"{r['zeros']} / {r['total']} ({100 * r['share']:.1f}%) | "
                     f"{100 * r['near']:.1f}% |")
    return "\n".join(lines)


def write_readme(block: str, path: str = README) -> None:
    text = open(path, encoding="utf-8").read()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {BEGIN} ... {END} markers")
    text = pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--l1", type=float, nargs="+", default=list(SWEEP), help="the sweep")
    parser.add_argument("--save-dir", help="save the two models of l1 = %g here" % README_L1)
    parser.add_argument("--write-readme", action="store_true",
                        help="rewrite the table between the markers in README.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and runs are reproducible
    start = time.perf_counter()
    print(f"two moons (noise 0.2, seed 1): 200 train / 200 test; MLP 2-{args.hidden}-"
          f"{args.hidden}-1 ReLU, full-batch SGD lr {args.lr:g}, {args.epochs} epochs, seed "
          f"{args.seed}")
    rows = run(args.l1, args.epochs, args.hidden, args.lr, args.seed, args.save_dir)
    seconds = time.perf_counter() - start
    where = f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__}, one thread"
    print(f"ran in {seconds:.0f} s ({where})")
    if args.write_readme:
        command = "python examples/prox_sparsity.py --write-readme"
        block = (f"{table(rows)}\n\n2-{args.hidden}-{args.hidden}-1 MLP, full-batch SGD lr "
                 f"{args.lr:g}, {args.epochs} epochs, seed {args.seed}, the same initial weights "
                 f"for both forms; `{command}` wrote this table ({seconds:.0f} s on {where}).")
        write_readme(block)
        print(f"table written to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
