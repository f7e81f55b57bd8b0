#!/usr/bin/env python
"""Builds of libfastpenalty timed against each other, the rounds sorted by the machine's speed.

The machine's read bandwidth moves between phases (about 50 and 80-88 GB/s on the 2-core AMD
EPYC), and a kernel's fraction of the probe can differ between them: a run of ab_libraries.py
reports one median over whichever phases it met. Here every call of every build comes right
after a torch probe of the same bytes (torch.sum for value, add_ for accumulate), and its ratio
(probe time / call time) is filed under the speed that probe read at: slow (<= 58 GB/s), mid,
fast (> 70 GB/s). Run for long enough to meet both phases.

    python bench/ab_by_bandwidth.py --seconds 240 --dtype bfloat16 --mode value \
        new=build/a/libfastpenalty.so.1 old=build/b/libfastpenalty.so.1
"""

import argparse
import collections
import ctypes
import statistics
import sys
import time

import torch

from fastpenalty import _dtypes
from fastpenalty.benchmarks.ab_libraries import Library
from fastpenalty.benchmarks.buffers import filled_like, flat_probe_arrays, numpy_weights

BINS = (("slow", float("-inf")), ("mid", 58.0), ("fast", 70.0))


def bin_of(gbps: float) -> str:
    return [name for name, low in BINS if gbps > low][-1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("libraries", nargs="+", metavar="NAME=PATH")
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(_dtypes.CODES))
    p.add_argument("--mode", default="value", choices=("value", "accumulate"))
    p.add_argument("--size", type=int, default=100_000_000)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    libs = []
    for spec in args.libraries:
        lib = Library(*spec.split("=", 1))
        lib.configure(None, args.threads)
        libs.append((lib.label, lib))
    torch.set_num_threads(args.threads)
    n, code = args.size, _dtypes.CODES[args.dtype]
    w = numpy_weights(n, args.dtype)
    g = filled_like(w)
    pw, pg = (torch.from_numpy(a) for a in flat_probe_arrays(w.nbytes, "float32"))
    traffic = w.nbytes * (1 if args.mode == "value" else 3)
    out = ctypes.c_double()
    ratios = collections.defaultdict(list)
    end, rnd = time.time() + args.seconds, 0
    while time.time() < end:
        for name, lib in libs[rnd % len(libs):] + libs[:rnd % len(libs)]:  # each round starts one later
            t0 = time.perf_counter()
            if args.mode == "value":
                torch.sum(pw)
            else:
                pg.add_(pw)
            t1 = time.perf_counter()
            if args.mode == "value":
                status = lib.lib.fp_value(w.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out))
            else:
                status = lib.lib.fp_accumulate(w.ctypes.data, g.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out))
            t2 = time.perf_counter()
            lib.check(status, args.mode)
            ratios[(bin_of(traffic / (t1 - t0) / 1e9), name)].append((t1 - t0) / (t2 - t1))
        rnd += 1
    values = []
    for _name, lib in libs:  # the penalty each build computes, on the same weights
        lib.check(lib.lib.fp_value(w.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out)), "value")
        values.append(out.value)
    print(f"# {args.dtype} {args.mode}, {n} elements, {args.threads} threads, {rnd} rounds; "
          "median of probe time / call time (calls)")
    for b, _ in BINS:
        cells = [f"{name} {statistics.median(ratios[(b, name)]):.3f} ({len(ratios[(b, name)])})"
                 for name, _ in libs if ratios.get((b, name))]
        if cells:
            print(f"{b:5s} " + "  ".join(cells))
    print("values " + "  ".join(f"{name} {v!r}" for (name, _), v in zip(libs, values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
