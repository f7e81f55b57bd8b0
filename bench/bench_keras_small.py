#!/usr/bin/env python
"""The cost of one regularizer call on a small weight: fastpenalty.keras's against Keras's own,
on the same backend, in the same process.

    python bench/bench_keras_small.py                  # torch, jax and numpy; writes bench/results/keras_small_weight_cpu.md
    python bench/bench_keras_small.py --backend jax    # one backend, prints its rows only

Per backend (Keras fixes it at import, so each runs in its own process), per weight shape, what
Keras's trainer does with a weight penalty:
    torch   reg(variable) and .backward(), eager (Keras's torch trainer is eager by default)
    jax     jax.jit(jax.value_and_grad(reg)) on the weight (the penalty inside a jitted step),
            and the eager reg(weight)
    numpy   reg(weight) (the numpy backend does not train)
Rounds time both regularizers in turn (each the median of a batch of calls); the ratio
ours / Keras's is taken within a round so load drift on a shared machine cancels; medians over
rounds are reported. The target: at most 2x Keras's own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHAPES = ((64,), (16, 16), (128, 64), (512, 512))
BACKENDS = ("torch", "jax", "numpy")


def _cases(keras, fk):
    import numpy as np

    backend = keras.backend.backend()
    for shape in SHAPES:
        w = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        for name, ours, theirs in (("L2(0.01)", fk.L2(0.01), keras.regularizers.L2(0.01)),
                                   ("L1L2(1e-5, 1e-4)", fk.L1L2(1e-5, 1e-4),
                                    keras.regularizers.L1L2(1e-5, 1e-4))):
            if backend == "torch":
                var = keras.Variable(w)

                def call(reg, var=var):
                    reg(var).backward()

                yield shape, name, "value + backward, eager", call, ours, theirs
            elif backend == "jax":
                import jax

                x = keras.ops.convert_to_tensor(w)
                fns = {id(r): jax.jit(jax.value_and_grad(r)) for r in (ours, theirs)}

                def jitted(reg, x=x, fns=fns):
                    jax.block_until_ready(fns[id(reg)](x))

                yield shape, name, "jit(value_and_grad)", jitted, ours, theirs

                def eager(reg, x=x):
                    jax.block_until_ready(reg(x))

                yield shape, name, "value, eager", eager, ours, theirs
            else:
                x = keras.ops.convert_to_tensor(w)
                yield shape, name, "value", (lambda reg, x=x: reg(x)), ours, theirs


def _batch_us(fn, reg, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn(reg)
    return (time.perf_counter() - start) / calls * 1e6


def measure(rounds: int, calls: int) -> list:
    import keras

    import fastpenalty.keras as fk

    rows = []
    for shape, name, what, fn, ours, theirs in _cases(keras, fk):
        for reg in (ours, theirs):  # warm up: compile, caches
            for _ in range(20):
                fn(reg)
        mine, keras_own, ratios = [], [], []
        for _ in range(rounds):
            a, b = _batch_us(fn, ours, calls), _batch_us(fn, theirs, calls)
            mine.append(a)
            keras_own.append(b)
            ratios.append(a / b)
        rows.append({"backend": keras.backend.backend(), "shape": list(shape), "regularizer": name,
                     "call": what, "fastpenalty_us": statistics.median(mine),
                     "keras_us": statistics.median(keras_own), "ratio": statistics.median(ratios),
                     "ratio_max": max(ratios)})
    return rows


def _machine() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from fastpenalty.benchmarks.machine import cpu_model_name

    return f"{cpu_model_name()}, {os.cpu_count()} CPUs visible, {platform.machine()}"


def to_markdown(rows: list, versions: dict, machine: str) -> str:
    lines = [
        "# One regularizer call on a small weight: fastpenalty.keras vs Keras's own",
        "",
        f"Measured {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} on {machine} "
        f"(shared with other jobs; CPU, float32), by `python bench/bench_keras_small.py`. "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "Times are medians over rounds; *ratio* is fastpenalty / Keras within each round "
        "(median, worst round in brackets). Target: ratio <= 2.",
        "",
        "| backend | call | regularizer | weight | fastpenalty | Keras | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = "x".join(str(d) for d in r["shape"])
        lines.append(f"| {r['backend']} | {r['call']} | {r['regularizer']} | {shape} | "
                     f"{r['fastpenalty_us']:.1f} us | {r['keras_us']:.1f} us | "
                     f"{r['ratio']:.2f} ({r['ratio_max']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--out", default=str(RESULTS / "keras_small_weight_cpu.md"))
    args = parser.parse_args(argv)
    if args.backend:  # the worker: one backend, rows as JSON on stdout
        os.environ["KERAS_BACKEND"] = args.backend
        if args.backend == "torch":
            import torch

            torch.set_num_threads(1)
        print(json.dumps(measure(args.rounds, args.calls)))
        return 0
    rows = []
    for backend in BACKENDS:
        run = subprocess.run([sys.executable, "-W", "ignore", __file__, "--backend", backend,
                              "--rounds", str(args.rounds), "--calls", str(args.calls)],
                             capture_output=True, text=True, check=True)
        rows += json.loads(run.stdout.strip().splitlines()[-1])
    from importlib.metadata import version

    versions = {name: version(name) for name in ("keras", "torch", "jax")}
    text = to_markdown(rows, versions, _machine())
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
