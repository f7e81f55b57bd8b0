#!/usr/bin/env python
"""Issue 7: fastpenalty.jax against XLA's own autodiff of the same penalty, over a model's
parameter list (GPT-2 small by default), on the CPU.

    python bench/bench_jax.py                      # gpt2-small, writes bench/results/jax_<model>_cpu.{md,json}
    python bench/bench_jax.py --quick              # mlp-tiny smoke run, writes nothing
    python bench/bench_jax.py --model bert-base --rounds 9

Every candidate is jitted and returns (value, gradients):
    jax_autodiff          jax.jit(jax.value_and_grad(penalty)), penalty in jax.numpy  (the baseline)
    value_and_grad_many   jax.jit(fastpenalty.jax.value_and_grad_many)
    grad_of_value_many    jax.jit(jax.value_and_grad(fastpenalty.jax.value_many)): the custom VJP
and, for adding the penalty gradient into existing gradients (a train step), with the gradient
buffers donated:
    jax_autodiff_add      XLA: g + grad(penalty)
    add_to                fastpenalty.jax.value_and_grad_many(..., add_to=g): g += grad in place
Rounds run every candidate once, in turn; a candidate's ratio to its baseline is taken within
each round (so load drift on a shared machine cancels), and medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import fastpenalty
import fastpenalty.jax as fj
from fastpenalty import models

L1, L2 = 1e-5, 1e-4
RESULTS = Path(__file__).resolve().parent / "results"


def plain_penalty(params):
    return sum(L1 * jnp.sum(jnp.abs(p)) + L2 * jnp.sum(p * p) for p in jax.tree.leaves(params))


def candidates():
    """name -> (jitted function of (params, grads), baseline name, bytes moved per element)."""
    return {
        "jax_autodiff": (jax.jit(lambda p, g: jax.value_and_grad(plain_penalty)(p)), None, 8),
        "value_and_grad_many": (jax.jit(lambda p, g: fj.value_and_grad_many(p, L1, L2)), "jax_autodiff", 8),
        "grad_of_value_many": (jax.jit(lambda p, g: jax.value_and_grad(lambda q: fj.value_many(q, L1, L2))(p)),
                               "jax_autodiff", 8),
        "jax_autodiff_add": (jax.jit(lambda p, g: _xla_add(p, g), donate_argnums=1), None, 12),
        "add_to": (jax.jit(lambda p, g: fj.value_and_grad_many(p, L1, L2, add_to=g), donate_argnums=1),
                   "jax_autodiff_add", 12),
    }


def _xla_add(params, grads):
    value, dp = jax.value_and_grad(plain_penalty)(params)
    return value, jax.tree.map(jnp.add, grads, dp)


def measure(model: str, rounds: int) -> dict:
    specs = models.parameter_specs(model)
    n_elements = models.num_parameters(model)
    host = models.materialize(model, dtype="float32", backend="numpy")
    params = {k: jnp.asarray(v) for k, v in host.items()}
    del host
    fns = candidates()
    grads = {name: jax.tree.map(jnp.zeros_like, params) for name in fns}  # donated ones are replaced

    compile_s, values = {}, {}
    for name, (fn, _, _) in fns.items():  # compile and warm up
        t0 = time.perf_counter()
        value, out = jax.block_until_ready(fn(params, grads[name]))
        compile_s[name] = time.perf_counter() - t0
        grads[name] = out
        values[name] = float(value)

    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, (fn, _, _) in fns.items():
            t0 = time.perf_counter()
            value, out = jax.block_until_ready(fn(params, grads[name]))
            times[name].append(time.perf_counter() - t0)
            grads[name] = out

    rows = []
    for name, (_, baseline, bytes_per_element) in fns.items():
        median = statistics.median(times[name])
        row = {"candidate": name, "median_ms": 1e3 * median, "min_ms": 1e3 * min(times[name]),
               "first_call_s": compile_s[name], "value": values[name],
               "GB_per_s": bytes_per_element * n_elements / median / 1e9}
        if baseline:
            per_round = [b / t for b, t in zip(times[baseline], times[name])]
            row["speedup_vs"] = baseline
            row["speedup_median"] = statistics.median(per_round)
        rows.append(row)
    return {
        "model": model, "tensors": len(specs), "elements": n_elements, "dtype": "float32",
        "l1": L1, "l2": L2, "rounds": rounds, "rows": rows,
        "machine": {"python": platform.python_version(), "jax": jax.__version__,
                    "jax_backend": jax.default_backend(), "cpu_count": os.cpu_count(),
                    "load_average_1min": os.getloadavg()[0], "fastpenalty_threads": fastpenalty.get_num_threads(),
                    "fastpenalty_isa": fastpenalty.get_isa(), "xla_ffi_headers": fj.XLA_FFI_VERSION},
    }


def to_markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# fastpenalty.jax vs jax.jit(jax.value_and_grad(...)): {r['model']} on the CPU",
        "",
        f"{r['tensors']} float32 tensors, {r['elements']:,} elements; l1={r['l1']}, l2={r['l2']}; "
        f"median of {r['rounds']} interleaved rounds. jax {m['jax']} ({m['jax_backend']}), "
        f"{m['cpu_count']} CPUs (1-min load average {m['load_average_1min']:.1f} at the end), "
        f"fastpenalty {m['fastpenalty_threads']} threads, {m['fastpenalty_isa']} kernels. GB/s counts the least "
        "traffic: 8 bytes per element for value+grad (read w, write g), 12 with add_to (read w and g, write g).",
        "",
        "| candidate | median ms | min ms | GB/s | speed-up (median per round) | first call s |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for row in r["rows"]:
        speedup = f"{row['speedup_median']:.2f}x vs {row['speedup_vs']}" if "speedup_vs" in row else "baseline"
        lines.append(f"| {row['candidate']} | {row['median_ms']:.1f} | {row['min_ms']:.1f} | {row['GB_per_s']:.2f} | "
                     f"{speedup} | {row['first_call_s']:.2f} |")
    values = [row["value"] for row in r["rows"]]
    spread = (max(values) - min(values)) / abs(statistics.median(values))
    lines += ["", f"Penalty value {statistics.median(values):.6g}; the candidates agree to {spread:.1e} (relative).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gpt2-small", choices=models.names())
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="mlp-tiny, 3 rounds, nothing written")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.rounds = "mlp-tiny", 3
    result = measure(args.model, args.rounds)
    text = to_markdown(result)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        stem = RESULTS / f"jax_{args.model}_cpu"
        stem.with_suffix(".md").write_text(text)
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {stem}.md and {stem}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
