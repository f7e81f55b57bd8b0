"""The classic Keras weight-regularization case study, with fastpenalty.keras's L2 and model.fit.

Two moons (100 samples, noise 0.2, seed 1; 30 for training, 70 for testing), a Dense(500, relu)
hidden layer and a sigmoid output, Adam, binary cross-entropy, 4000 epochs, full batch:
first without a penalty and with `kernel_regularizer=L2(0.001)` on the hidden layer, both with
validation_data so the history holds the learning curves, then a grid over the L2 factor
1e-1 ... 1e-6. examples/moons.py is the same study written in plain torch.

    KERAS_BACKEND=jax python examples/moons_keras.py       # or --backend jax|torch (default torch)
    python examples/moons_keras.py --epochs 500             # shorter
    python examples/moons_keras.py --plot moons_keras.png   # learning curves and the grid (matplotlib)
    python examples/moons_keras.py --save-output            # also write examples/moons_keras_output_<backend>.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from moons_data import load_split  # noqa: E402

GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
HERE = os.path.dirname(os.path.abspath(__file__))


def build_model(keras, l2: float, seed: int = 0):
    """2 -> Dense(500, relu) -> Dense(1, sigmoid); L2 on the hidden kernel when l2 > 0. The
    same seed gives every run the same initial weights."""
    from fastpenalty.keras import L2

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(500, activation="relu", kernel_regularizer=L2(l2) if l2 > 0 else None),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def train(keras, data, l2: float, epochs: int, validate: bool) -> dict:
    """One model.fit of `epochs` full-batch epochs; the final train and test accuracy, the hidden
    kernel's norm and, with validate, the history (the learning curves)."""
    X_train, y_train, X_test, y_test = data
    model = build_model(keras, l2)
    history = model.fit(X_train, y_train, epochs=epochs, batch_size=len(X_train), verbose=0,
                        validation_data=(X_test, y_test) if validate else None)
    _, train_acc = model.evaluate(X_train, y_train, verbose=0)
    _, test_acc = model.evaluate(X_test, y_test, verbose=0)
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)
    return {"l2": l2, "train_acc": float(train_acc), "test_acc": float(test_acc),
            "hidden_norm": float((kernel.astype("float64") ** 2).sum() ** 0.5),
            "history": history.history if validate else None}


def run_study(keras, epochs: int, grid=GRID, l2: float = 1e-3, emit=print) -> dict:
    data = load_split(30)
    emit(f"two moons: 100 samples, noise 0.2, seed 1; {len(data[0])} for training, "
         f"{len(data[2])} for testing")
    emit(f"Keras {keras.__version__} on {keras.backend.backend()}: Dense(500, relu) + Dense(1, sigmoid), "
         f"Adam lr 1e-3, binary cross-entropy, model.fit full batch, {epochs} epochs, "
         f"kernel_regularizer=fastpenalty.keras.L2 on the hidden layer")
    emit("")
    plain = train(keras, data, 0.0, epochs, validate=True)
    regularized = train(keras, data, l2, epochs, validate=True)
    for label, r in (("no penalty", plain), (f"L2 = {l2:g}", regularized)):
        emit(f"{label:12s} train accuracy {r['train_acc']:.3f}   test accuracy {r['test_acc']:.3f}"
             f"   hidden |W| {r['hidden_norm']:.3f}")
    emit("")
    emit("grid search over the L2 factor")
    emit(f"  {'l2':>7s}  {'train acc':>9s}  {'test acc':>8s}  {'hidden |W|':>10s}")
    results = []
    for value in grid:
        # validation_data changes no weight, so the L2 run above is this grid point already
        r = regularized if value == l2 else train(keras, data, value, epochs, validate=False)
        results.append(r)
        emit(f"  {value:7.0e}  {r['train_acc']:9.3f}  {r['test_acc']:8.3f}  {r['hidden_norm']:10.3f}")
    emit(f"  {'none':>7s}  {plain['train_acc']:9.3f}  {plain['test_acc']:8.3f}  {plain['hidden_norm']:10.3f}")
    return {"plain": plain, "regularized": regularized, "grid": results}


def plot(results: dict, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install fastpenalty[plot]") from None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for ax, key, title in ((axes[0], "plain", "no penalty"),
                           (axes[1], "regularized", f"L2 = {results['regularized']['l2']:g}")):
        h = results[key]["history"]
        ax.plot(h["accuracy"], label="train")
        ax.plot(h["val_accuracy"], label="test")
        ax.set_title(f"learning curves, {title}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0.5, 1.02)
        ax.legend(loc="lower right")
    grid = results["grid"]
    ax = axes[2]
    ax.semilogx([r["l2"] for r in grid], [r["train_acc"] for r in grid], "o-", label="train")
    ax.semilogx([r["l2"] for r in grid], [r["test_acc"] for r in grid], "s-", label="test")
    ax.set_title("grid search over the L2 factor")
    ax.set_xlabel("L2 factor")
    ax.set_ylabel("accuracy")
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("torch", "jax"),
                        help="Keras backend (default: KERAS_BACKEND, else torch)")
    parser.add_argument("--epochs", type=int, default=4000, help="training epochs (default 4000)")
    parser.add_argument("--plot", metavar="FILE", help="learning curves and the grid as a PNG")
    parser.add_argument("--save-output", nargs="?", const="", metavar="FILE",
                        help="also write what is printed to FILE "
                             "(default examples/moons_keras_output_<backend>.txt)")
    args = parser.parse_args(argv)
    # Keras reads its backend when it is first imported, so it is chosen before that import.
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("KERAS_BACKEND", "torch")
    if os.environ["KERAS_BACKEND"] == "torch":
        import torch

        torch.set_num_threads(1)  # tiny matrices: one thread is faster and reproducible
    import keras

    lines = []

    def emit(line=""):
        print(line, flush=True)
        lines.append(line)

    start = time.perf_counter()
    results = run_study(keras, args.epochs, emit=emit)
    backend = keras.backend.backend()
    emit("")
    from fastpenalty.benchmarks.machine import cpu_model_name

    emit(f"ran in {time.perf_counter() - start:.0f} s on {platform.machine()} "
         f"({cpu_model_name()}, {os.cpu_count()} CPUs; Keras {keras.__version__}, backend {backend})")
    if args.plot:
        plot(results, args.plot)
        print(f"plot written to {args.plot}")
    if args.save_output is not None:
        path = args.save_output or os.path.join(HERE, f"moons_keras_output_{backend}.txt")
        with open(path, "w", encoding="utf-8") as f:
            flags = "" if args.epochs == 4000 else f" --epochs {args.epochs}"
            f.write(f"$ python examples/moons_keras.py --backend {backend}{flags}\n")
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
