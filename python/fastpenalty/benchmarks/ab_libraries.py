"""bench/ab_libraries.py: builds of libfastpenalty timed against each other in one process.

Between two runs of a benchmark the machine's bandwidth drifts by more than most kernel changes
move a kernel, so a change is judged here instead: every library given (the C ABI, loaded side
by side through ctypes) works in turn on the same buffers, each call between two calls of the
first library's bandwidth probe, round after round (the harness of bench/README.md). The first
library is the subject: each other one gets `fastpenalty_speedup`, its time / the first's in
the same round (above 1: the first is faster). Their values are compared as any peer's are.
With --probe torch the probe is torch's add_ / sum of the same bytes, so every call starts right
after a torch op (whose OpenMP workers are then still spinning), as in a training step.

    python bench/ab_libraries.py before=build/a/libfastpenalty.so.1 after=build/b/libfastpenalty.so.1 \\
        --dtype bfloat16 --mode accumulate --threads 1 --repeats 41
"""

from __future__ import annotations

import argparse
import ctypes
import sys

from .. import _dtypes
from . import probes
from .buffers import DTYPES, ITEMSIZE, VALUE_RTOL, filled_like, flat_probe_arrays, numpy_weights, probe_dtype_for
from .cli import add_settings_arguments, finish, settings_from
from .harness import PROBE, SUBJECT, Candidate, Group, cpu_timer
from .machine import cpu_device
from .machine import run_facts as make_run_facts
from .runner import Context, measure_all
from .suites import parse_size, size_label

_c = ctypes


class Library:
    """One build's C ABI: the calls the comparison makes, with their argument types."""

    def __init__(self, label: str, path: str):
        self.label, self.path = label, path
        lib = _c.CDLL(path, mode=_c.RTLD_LOCAL)  # by path: each build keeps its own symbols
        ptr, i64, i32, f64, out = _c.c_void_p, _c.c_int64, _c.c_int32, _c.c_double, _c.POINTER(_c.c_double)
        for name, args in (("fp_value", [ptr, i64, i32, f64, f64, out]),
                           ("fp_accumulate", [ptr, ptr, i64, i32, f64, f64, out]),
                           ("fp_probe_add", [ptr, ptr, i64, i32]),
                           ("fp_probe_sum", [ptr, i64, i32, out]),
                           ("fp_set_isa", [_c.c_char_p]), ("fp_set_num_threads", [_c.c_int])):
            getattr(lib, name).argtypes = args
        for name in ("fp_last_error", "fp_get_isa"):
            getattr(lib, name).restype = _c.c_char_p
        self.lib = lib

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{self.label}: {what} failed: {self.lib.fp_last_error().decode()}")

    def configure(self, isa, threads) -> None:
        if isa:
            self.check(self.lib.fp_set_isa(isa.encode()), f"fp_set_isa({isa!r})")
        if threads:
            self.check(self.lib.fp_set_num_threads(threads), f"fp_set_num_threads({threads})")


def _labelled(specs) -> list:
    """'name=path' or 'path' (labelled by its position) for each library."""
    out = []
    for k, spec in enumerate(specs):
        label, sep, path = spec.partition("=")
        out.append((label, path) if sep else (f"lib{k}", spec))
    return out


def ab_group(libs: list, n: int, dtype: str, mode: str, l1: float, l2: float, probe_kind: str = "core") -> Group:
    """The group: each library's value or accumulate over one array of n elements, against the
    first library's probe of the same traffic (or torch's: probe_kind 'torch')."""
    w = numpy_weights(n, dtype)
    g = filled_like(w)
    pw, pg = flat_probe_arrays(w.nbytes, probe_dtype_for([dtype]))
    code, pcode = _dtypes.CODES[dtype], _dtypes.CODES[str(pw.dtype)]
    out = _c.c_double()
    keep = (w, g, pw, pg)  # the raw pointers below are valid while these live
    first = libs[0]

    def call(library, name, *args, value=True):
        fn = getattr(library.lib, name)

        def run(_keep=keep):
            library.check(fn(*args), name)
            return out.value if value else None  # a probe computes no penalty
        return run

    if mode == "value":
        work = ("fp_value", w.ctypes.data, n, code, l1, l2, _c.byref(out))
        probe = ("fp_probe_sum", pw.ctypes.data, pw.size, pcode, _c.byref(out))
        variant, traffic = "core sum(w)", ITEMSIZE[dtype] * n
    else:
        work = ("fp_accumulate", w.ctypes.data, g.ctypes.data, n, code, l1, l2, _c.byref(out))
        probe = ("fp_probe_add", pw.ctypes.data, pg.ctypes.data, pw.size, pcode)
        variant, traffic = "core g+=w", 3 * ITEMSIZE[dtype] * n
    candidates = [Candidate(SUBJECT if k == 0 else "build", call(lib, *work), variant=lib.label)
                  for k, lib in enumerate(libs)]
    if probe_kind == "torch":
        probe_candidate = probes.numpy_pair("torch", pw, pg if mode == "accumulate" else None)
    else:
        probe_candidate = Candidate(PROBE, call(first, *probe, value=False), compare=False, variant=variant)
    return Group(case=f"tensor-{size_label(n)}", api="c-abi", mode=mode, n_elements=n, n_tensors=1, dtype=dtype,
                 bytes_per_call=traffic, candidates=candidates,
                 probe=probe_candidate,
                 isa=first.lib.fp_get_isa().decode(), threads=first.lib.fp_get_num_threads(),
                 value_rtol=VALUE_RTOL.get(dtype))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("libraries", nargs="+", metavar="[NAME=]PATH",
                        help="libfastpenalty.so.1 of each build; the first is the subject")
    add_settings_arguments(parser)
    parser.add_argument("--size", default="1e8", help="elements (default %(default)s)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--mode", default="accumulate", choices=("accumulate", "value"))
    parser.add_argument("--isa", help="force this ISA in every library (default: each one's best)")
    parser.add_argument("--probe", choices=("core", "torch"), default="core",
                        help="bandwidth probe: the first library's loops (default) or torch's add_ / sum")


def run(args) -> int:
    if len(args.libraries) < 2:
        print("error: give at least two libraries to compare", file=sys.stderr)
        return 2
    try:
        libs = [Library(label, path) for label, path in _labelled(args.libraries)]
        for lib in libs:
            lib.configure(args.isa, args.threads)
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    first = libs[0].lib
    facts = make_run_facts(args.quick)
    device = cpu_device(first.fp_get_num_threads(), first.fp_get_isa().decode())
    ctx = Context("cpu", settings_from(args), facts, device, cpu_timer)
    print(f"# {device} | " + " | ".join(f"{lib.label}: {lib.path}" for lib in libs) + "\n")
    n = parse_size(args.size)
    if args.probe == "torch" and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows = measure_all([ab_group(libs, n, args.dtype, args.mode, args.l1, args.l2, args.probe)], ctx)
    finish(rows, args.out, "ab_libraries", facts)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/ab_libraries.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
