"""``python -m fastpenalty bench``: fastpenalty against its peers and the bandwidth probes."""

from __future__ import annotations

import argparse
import os
import sys

from . import machine, targets
from .buffers import DTYPES
from .harness import Settings
from .report import format_targets
from .results import resolve_out, write_csv
from .runner import FULL_SETTINGS, QUICK_SETTINGS, make_context, measure_all
from .suites import Options, all_cases, select_cases

DEFAULT_OUT = os.path.join("bench", "results")


def add_settings_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every benchmark entry point shares."""
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: a smoke run, not figures to quote")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help="CSV file (*.csv) or folder for an automatically named one (default: %(default)s)")
    parser.add_argument("--repeats", type=int, help="rounds per group (default 21; 5 with --quick)")
    parser.add_argument("--warmup", type=int, help="untimed rounds first (default 3; 1 with --quick)")
    parser.add_argument("--max-seconds", type=float,
                        help="stop a group after this long once a few rounds are done (default 60; 5 with --quick)")
    parser.add_argument("--threads", type=int, help="CPU threads for fastpenalty and torch (default: theirs)")
    parser.add_argument("--l1", type=float, default=Options.l1, help="L1 factor (default %(default)g)")
    parser.add_argument("--l2", type=float, default=Options.l2, help="L2 factor (default %(default)g)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--cases",
                        help="comma-separated case names, globs or prefixes (tensor, model, keras-mlp, "
                             "tensor-3e7, model-bert-base, ...); default: every default case; see --list")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where to run (default: the CPU, and CUDA too when torch sees a GPU)")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="weight dtype (default %(default)s)")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")


def settings_from(args) -> Settings:
    base = QUICK_SETTINGS if args.quick else FULL_SETTINGS
    repeats = args.repeats or base.repeats
    return Settings(warmup=base.warmup if args.warmup is None else args.warmup, repeats=repeats,
                    min_repeats=min(base.min_repeats, repeats),
                    max_seconds=base.max_seconds if args.max_seconds is None else args.max_seconds)


def apply_threads(threads) -> None:
    if not threads:
        return
    import torch

    from fastpenalty import _core

    _core.set_num_threads(threads)
    torch.set_num_threads(threads)


def _devices(choice) -> list:
    if choice:
        return [choice]
    try:
        import torch

        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    except ImportError:
        return ["cpu"]


def finish(rows: list, out: str, stem: str, run_facts: dict) -> str:
    """Writes the CSV and prints the targets; returns the path."""
    path = resolve_out(out, stem, run_facts)
    write_csv(path, rows)
    print(format_targets(targets.check(rows)))
    label = " (--quick: small sizes, noisy; not figures to quote)" if run_facts.get("quick") else ""
    print(f"wrote {len(rows)} rows to {path}{label}")
    return path


def run(args) -> int:
    if args.list:
        for case in all_cases(args.quick):
            print(f"{case.name}{'' if case.default else '  (only when named)'}")
        return 0
    try:
        cases = select_cases([p.strip() for p in (args.cases or "").split(",") if p.strip()], args.quick)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    devices = _devices(args.device)
    if "cuda" in devices:
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
            return 2
    apply_threads(args.threads)
    options = Options(dtype=args.dtype, l1=args.l1, l2=args.l2, compile=not args.no_compile, quick=args.quick)
    run_facts = machine.run_facts(args.quick)
    rows = []
    for device_type in devices:
        ctx = make_context(device_type, args.quick, settings_from(args), run_facts)
        print(f"# {ctx.device} | fastpenalty {run_facts['fastpenalty_version']} | torch {run_facts['torch_version']} "
              f"| numpy {run_facts['numpy_version']}\n")
        for case in cases:
            rows += measure_all(case.make_groups(ctx, options), ctx)
    finish(rows, args.out, "bench", run_facts)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastpenalty bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
