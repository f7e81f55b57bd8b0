"""bench/bench_cpu_kernels.py: the CPU kernels on NumPy arrays, per size, dtype and ISA.

For each (size, dtype, ISA): accumulate_ with l1, l2 > 0 against the core's g += w probe
(3 x itemsize bytes per element), and the value against the core's read-only sum (itemsize
bytes per element); at the best ISA also the NumPy code a user would write (--no-peers: not).
--many N adds the host-overhead case: N float32 arrays of 4 elements in one *_many call (time per
call / N is the NumPy path's cost per tensor). --probe torch times against torch's add_ / sum of
the same bytes instead: each call then starts right after a torch op, whose OpenMP workers are
still spinning, as in a training step.
"""

from __future__ import annotations

import argparse
import sys

from .buffers import DTYPES, numpy_weights
from .cases_numpy import numpy_groups
from .cli import add_settings_arguments, apply_threads, finish, settings_from
from .machine import run_facts as make_run_facts
from .runner import make_context, measure_all
from .suites import parse_size, size_label

SIZES = (10**8,)
QUICK_SIZES = (10**5,)


def kernel_groups(sizes, dtypes, isas, l1: float, l2: float, threads: int, peers: bool = True, many: int = 0,
                  probe: str = "core"):
    import fastpenalty
    from fastpenalty import _core

    best = _core.best_isa()
    previous = _core.get_isa()
    try:
        if many:
            ws = [numpy_weights(4, "float32", seed=i) for i in range(many)]
            yield from numpy_groups(f"many-{many}x4", ws, l1, l2, isa=best, threads=threads, peers=False, probe=probe)
        for n in sizes:
            for dtype in dtypes:
                ws = [numpy_weights(n, dtype)]
                for isa in isas:
                    fastpenalty.set_isa(isa)
                    yield from numpy_groups(f"tensor-{size_label(n)}", ws, l1, l2, isa=isa, threads=threads,
                                            peers=peers and isa == best, probe=probe)
                del ws
    finally:
        fastpenalty.set_isa(previous)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--sizes", help="comma-separated element counts, e.g. 1e6,1e8 (default 1e8; 1e5 with --quick)")
    parser.add_argument("--dtypes", default=",".join(DTYPES), help="comma-separated dtypes (default %(default)s)")
    parser.add_argument("--isas", default="all", help="comma-separated ISAs, or 'all' available here (default)")
    parser.add_argument("--no-peers", action="store_true", help="skip the NumPy peers (slow at 1e8 elements)")
    parser.add_argument("--many", type=int, default=0, help="also time N tiny arrays in one call (host overhead)")
    parser.add_argument("--probe", choices=("core", "torch"), default="core",
                        help="bandwidth probe: the core's loops (default) or torch's add_ / sum of the same bytes")


def run(args) -> int:
    from fastpenalty import _core

    sizes = [parse_size(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = [d for d in dtypes if d not in DTYPES]
    available = list(_core.available_isas())
    isas = available if args.isas == "all" else [i.strip() for i in args.isas.split(",") if i.strip()]
    unknown += [i for i in isas if i not in available]
    if unknown:
        print(f"error: unknown or unavailable here: {', '.join(unknown)} (ISAs here: {', '.join(available)})",
              file=sys.stderr)
        return 2
    apply_threads(args.threads)
    facts = make_run_facts(args.quick)
    ctx = make_context("cpu", args.quick, settings_from(args), facts)
    print(f"# {ctx.device} | fastpenalty {facts['fastpenalty_version']} | numpy {facts['numpy_version']}\n")
    groups = kernel_groups(sizes, dtypes, isas, args.l1, args.l2, _core.get_num_threads(), peers=not args.no_peers,
                           many=args.many, probe=args.probe)
    rows = measure_all(groups, ctx)
    finish(rows, args.out, "cpu_kernels", facts)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/bench_cpu_kernels.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
