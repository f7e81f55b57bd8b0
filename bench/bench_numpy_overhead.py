#!/usr/bin/env python
"""Host overhead per array of the NumPy multi-tensor calls (issue 13: <= 0.5 us per tensor), on many
tiny float32 arrays, beside a Python loop of np.add(g, w, out=g) (the probe: the cheapest per-array
NumPy call a user's own loop would make, one ufunc call per array). Rounds are interleaved, so drift
hits every row alike. "per tensor" is the call's time / N; "marginal" is the slope between N and
N/10 tensors, which leaves out the per-call fixed cost.

    python bench/bench_numpy_overhead.py                   # 2000 arrays of 64 float32 elements
    python bench/bench_numpy_overhead.py --out bench/results/numpy_overhead_cpu.md
"""
import argparse
import statistics

import numpy as np

import fastpenalty
from fastpenalty.benchmarks.host_overhead import emit, interleaved_times, per_tensor_us
from fastpenalty.benchmarks.machine import cpu_device

L1, L2 = 1e-5, 1e-4


def calls(n: int, size: int) -> dict:
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal(size).astype(np.float32) for _ in range(n)]
    gs = [np.zeros(size, np.float32) for _ in range(n)]

    def probe():
        for w, g in zip(ws, gs):
            np.add(g, w, out=g)

    return {
        "Python loop of np.add(g, w, out=g) [probe]": probe,
        "fastpenalty.accumulate_many_(ws, gs, l1, l2)": lambda: fastpenalty.accumulate_many_(ws, gs, L1, L2),
        "fastpenalty.value_many(ws, l1, l2)": lambda: fastpenalty.value_many(ws, L1, L2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--out", help="write the table (markdown) here too")
    args = parser.parse_args()
    small = max(1, args.tensors // 10)
    by_n = {args.tensors: calls(args.tensors, args.size), small: calls(small, args.size)}
    times = interleaved_times({(k, name): fn for k, cs in by_n.items() for name, fn in cs.items()},
                              args.rounds, args.inner)
    n = args.tensors
    probe_name = next(iter(by_n[n]))
    probe = statistics.median(times[(n, probe_name)])
    machine = cpu_device(fastpenalty.get_num_threads(), fastpenalty.get_isa())
    lines = [f"Host time per array, {n} NumPy arrays of {args.size} float32 elements, median of {args.rounds} "
             f"interleaved rounds of {args.inner} calls; {machine}; numpy {np.__version__}. "
             f"`python bench/bench_numpy_overhead.py{'' if n == 2000 else f' --tensors {n}'}`", "",
             f"| call | us per tensor (p20 / p50 / p80) | marginal us per tensor ({small} -> {n}, p50) "
             "| time / probe (p50) |", "|---|---|---|---|"]
    for name in by_n[n]:
        ts = times[(n, name)]
        per = per_tensor_us(ts, n)
        slope = 1e6 * (statistics.median(ts) - statistics.median(times[(small, name)])) / (n - small)
        lines.append(f"| {name} | {per[0]:.3f} / {per[1]:.3f} / {per[2]:.3f} | {slope:.3f} | "
                     f"{statistics.median(ts) / probe:.2f} |")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
