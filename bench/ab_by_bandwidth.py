#!/usr/bin/env python
"""Builds of libfastpenalty timed against each other, the calls sorted by the machine's speed.

The machine's read bandwidth moves between phases (about 50 and 80-88 GB/s on the 2-core AMD
EPYC), and a kernel's fraction of the probe can differ between them: a run of ab_libraries.py
reports one median over whichever phases it met. Here every call sits between two torch probes
of the same bytes (torch.sum for value, add_ for accumulate): it is filed under the speed the
probe before it read at, and its ratio is the probe after it / the call. Filing a call by one
probe and timing it against another keeps the bins from picking the probe's own noise: divided
by the probe that chose its bin, every call in the fast bin looks slower than it is, since a
probe that happened to read fast put it there. A control, the torch probe itself timed as if it
were a build ("torch"), shows what a plain torch pass scores under the same conditions (right
after another pass over memory); each build's ratio is also given divided by the control's.
The bins are the slow, middle and fast third of the first probes' speeds over the run, or
--bounds LOW,HIGH in GB/s. Run for long enough to meet every phase.

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
from fastpenalty.benchmarks.machine import cpu_device, run_facts

BINS = ("slow", "mid", "fast")
CONTROL = "torch"


def bounds_of(speeds: list, given=None) -> tuple:
    """(low, high) GB/s: given, or the speeds' tertiles."""
    if given is not None:
        return given
    if len(speeds) < 2:  # a run too short for tertiles: one bin
        return (speeds[0], speeds[0]) if speeds else (0.0, 0.0)
    low, high = statistics.quantiles(speeds, n=3)
    return low, high


def bin_of(gbps: float, bounds: tuple) -> str:
    """slow up to bounds[0] inclusive, fast above bounds[1], mid between."""
    return "slow" if gbps <= bounds[0] else "fast" if gbps > bounds[1] else "mid"


def parse_bounds(text: str) -> tuple:
    low, high = (float(x) for x in text.split(","))
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"--bounds wants 0 < LOW <= HIGH, got {text!r}")
    return low, high


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("libraries", nargs="+", metavar="NAME=PATH")
    p.add_argument("--seconds", type=float, default=240.0)
    p.add_argument("--dtype", default="bfloat16", choices=sorted(_dtypes.CODES))
    p.add_argument("--mode", default="value", choices=("value", "accumulate"))
    p.add_argument("--size", type=int, default=100_000_000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--isa", help="force this ISA in every build (default: each one's best)")
    p.add_argument("--bounds", type=parse_bounds, metavar="LOW,HIGH",
                   help="bin bounds in GB/s of the probe before each call (default: its tertiles)")
    args = p.parse_args(argv)
    libs = []
    try:
        for spec in args.libraries:
            name, sep, path = spec.partition("=")
            if not sep or name == CONTROL:
                raise RuntimeError(f"{spec!r}: give NAME=PATH, NAME not {CONTROL!r}")
            lib = Library(name, path)
            lib.configure(args.isa, args.threads)
            libs.append((name, lib))
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    n, code = args.size, _dtypes.CODES[args.dtype]
    w = numpy_weights(n, args.dtype)
    g = filled_like(w)
    pw, pg = (torch.from_numpy(a) for a in flat_probe_arrays(w.nbytes, "float32"))
    traffic = w.nbytes * (1 if args.mode == "value" else 3)
    out = ctypes.c_double()

    def probe():
        if args.mode == "value":
            torch.sum(pw)
        else:
            pg.add_(pw)

    def build_call(lib):
        if args.mode == "value":
            return lambda: lib.check(lib.lib.fp_value(w.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out)), "value")
        return lambda: lib.check(
            lib.lib.fp_accumulate(w.ctypes.data, g.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out)), "accumulate")

    candidates = [(CONTROL, probe)] + [(name, build_call(lib)) for name, lib in libs]
    calls = []  # (GB/s of the probe before, name, probe after / call)
    end, rnd = time.time() + args.seconds, 0
    while time.time() < end:
        k = rnd % len(candidates)
        for name, call in candidates[k:] + candidates[:k]:  # each round starts one later
            t0 = time.perf_counter()
            probe()
            t1 = time.perf_counter()
            call()
            t2 = time.perf_counter()
            probe()
            t3 = time.perf_counter()
            calls.append((traffic / (t1 - t0) / 1e9, name, (t3 - t2) / (t2 - t1)))
        rnd += 1
    bounds = bounds_of([c[0] for c in calls], args.bounds)
    ratios = collections.defaultdict(list)
    for gbps, name, ratio in calls:
        ratios[(bin_of(gbps, bounds), name)].append(ratio)
    values = []
    for _name, lib in libs:  # the penalty each build computes, on the same weights
        lib.check(lib.lib.fp_value(w.ctypes.data, n, code, 1e-5, 1e-4, ctypes.byref(out)), "value")
        values.append(out.value)
    print(f"# {args.dtype} {args.mode}, {n} elements, {args.threads} threads, {rnd} rounds; per bin and "
          f"candidate: median of (probe after / call), that / {CONTROL}'s median, (calls)")
    first = libs[0][1].lib
    facts = run_facts(False)
    print(f"# {cpu_device(first.fp_get_num_threads(), first.fp_get_isa().decode())}, {facts['timestamp']}, torch "
          f"{torch.__version__} | " + " | ".join(f"{name}: {lib.path}" for name, lib in libs))
    print(f"# bins by the probe before each call: slow <= {bounds[0]:.1f} GB/s < mid <= {bounds[1]:.1f} GB/s < fast")
    for b in BINS:
        control = ratios.get((b, CONTROL))
        cells = []
        for name, _ in candidates:
            rs = ratios.get((b, name))
            if rs:
                rel = statistics.median(rs) / statistics.median(control) if control else float("nan")
                cells.append(f"{name} {statistics.median(rs):.3f} {rel:.3f} ({len(rs)})")
        if cells:
            print(f"{b:5s} " + "  ".join(cells))
    print("values " + "  ".join(f"{name} {v!r}" for (name, _), v in zip(libs, values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
