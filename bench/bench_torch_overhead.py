#!/usr/bin/env python
"""Host overhead per tensor of the torch multi-tensor calls, on many tiny CPU tensors, side by
side with torch._foreach_add_(gs, ws) (the probe: the same tensors, the same access pattern,
PyTorch's own fused multi-tensor route). Rounds are interleaved, so drift hits every row alike.

    python bench/bench_torch_overhead.py                   # 2000 tensors of 64 fp32 elements
    python bench/bench_torch_overhead.py --tensors 500 --out bench/results/torch_overhead_cpu.md
"""
import argparse
import statistics
import sys

import torch

import fastpenalty
from fastpenalty.benchmarks.host_overhead import emit, interleaved_times, per_tensor_us
from fastpenalty.benchmarks.machine import cpu_device
from fastpenalty.torch import Penalty


def cases(n: int, size: int) -> dict:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(size)) for _ in range(n)]
    for p in params:
        p.grad = torch.zeros(size)
    ws = [p.detach() for p in params]
    gs = [p.grad for p in params]
    penalty = Penalty(params, l1=1e-5, l2=1e-4)

    def penalty_value():
        with torch.no_grad():
            return penalty()

    return {
        "torch._foreach_add_(gs, ws) [probe]": lambda: torch._foreach_add_(gs, ws),
        "fastpenalty.accumulate_many_(ws, gs)": lambda: fastpenalty.accumulate_many_(
            ws, gs, 1e-5, 1e-4),
        "fastpenalty.value_many(ws)": lambda: fastpenalty.value_many(ws, 1e-5, 1e-4),
        "Penalty.accumulate_()": penalty.accumulate_,
        "Penalty() under no_grad": penalty_value,
        "Penalty() with autograd": penalty,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tensors", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--out", help="write the table (markdown) here too")
    args = parser.parse_args()
    calls = cases(args.tensors, args.size)
    times = interleaved_times(calls, args.rounds, args.inner)
    probe = statistics.median(times["torch._foreach_add_(gs, ws) [probe]"])
    machine = cpu_device(fastpenalty.get_num_threads(), fastpenalty.get_isa())
    command = " ".join(["python bench/bench_torch_overhead.py", *sys.argv[1:]])
    lines = [f"Host time per tensor, {args.tensors} CPU tensors of {args.size} float32 elements, "
             f"median of {args.rounds} interleaved rounds of {args.inner} calls; {machine}; "
             f"torch {torch.__version__}; fastpenalty {fastpenalty.__version__}. `{command}`", "",
             "| call | us per tensor (p20 / p50 / p80) | time / probe (p50) |", "|---|---|---|"]
    for name, ts in times.items():
        per = per_tensor_us(ts, args.tensors)
        lines.append(f"| {name} | {per[0]:.2f} / {per[1]:.2f} / {per[2]:.2f} | "
                     f"{statistics.median(ts) / probe:.2f} |")
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
