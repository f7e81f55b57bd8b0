"""`python -m fastpenalty profile`: per-layer weight norms, sparsity and penalty share of a model.

``fastpenalty/__main__.py`` builds the sub-parser with ``add_arguments`` and calls
``run``; every user-facing failure is one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from .. import models
from . import sources
from .errors import ProfileError
from .outputs import check_outputs
from .terminal import safe_text

DTYPES = ("float32", "float64", "float16", "bfloat16")
SORTS = ("model", "penalty", "params", "name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Per-layer weight norms, sparsity and penalty share of a model, with the "
                          "time of fastpenalty's fused pass next to the eager way (torch, or NumPy "
                          "without torch).")
    src = parser.add_argument_group("weights")
    src.add_argument("--model", metavar="NAME",
                     help=f"embedded model generated in-process (default {models.DEFAULT}); "
                          f"one of: {', '.join(models.names())}")
    src.add_argument("--checkpoint", metavar="PATH",
                     help="a real model's weights: .safetensors, torch state_dict (.pt/.pth/.bin), "
                          ".npz, Keras .keras/.weights.h5, or a sharded set (its directory or "
                          "*.index.json); only torch files need torch")
    src.add_argument("--compare", nargs=2, metavar=("A", "B"),
                     help="per-layer change of sum|w|, RMS, near-zero share and penalty from "
                          "checkpoint A to checkpoint B (e.g. trained without and with the penalty)")
    src.add_argument("--list-models", action="store_true", help="list the embedded models and exit")
    src.add_argument("--dtype", choices=DTYPES,
                     help="dtype of the weights (default: float32 for embedded models, "
                          "as stored for checkpoints)")
    src.add_argument("--device", default="cpu",
                     help="cpu (NumPy, the default) or a torch device such as cuda (needs torch)")
    src.add_argument("--seed", type=int, default=0, help="seed of the embedded model (default 0)")
    pen = parser.add_argument_group("penalty")
    pen.add_argument("--l1", type=float, default=0.01, help="L1 factor (default 0.01)")
    pen.add_argument("--l2", type=float, default=0.01, help="L2 factor (default 0.01)")
    pen.add_argument("--zero-threshold", type=float, default=1e-3, metavar="T",
                     help="a weight counts as near zero when |w| <= T (default 1e-3; 0 counts exact zeros)")
    pen.add_argument("--no-exclude", action="store_true",
                     help="penalize every tensor (by default biases and normalization weights are left out)")
    out = parser.add_argument_group("output")
    out.add_argument("--sort", choices=SORTS, default="model", help="table order (default: model order)")
    out.add_argument("--top", type=int, metavar="N", help="print only the first N rows of the table")
    out.add_argument("--json", metavar="FILE", help="write every fact as JSON ('-' for stdout, no table)")
    out.add_argument("--csv", metavar="FILE",
                     help="write one row per tensor and a total row as CSV ('-' for stdout, no table)")
    out.add_argument("--plot", metavar="FILE.png",
                     help="draw penalty shares and weight histograms (needs matplotlib)")
    out.add_argument("--plain", action="store_true", help="plain-text table even on a terminal")
    out.add_argument("--repeat", type=int, default=5, metavar="N",
                     help="timing runs per method; the median is shown (default 5; the eager way "
                          "takes seconds per run on billion-parameter models)")
    out.add_argument("--no-timing", action="store_true", help="skip the timing comparison")


def _check(args) -> None:
    for flag in ("l1", "l2", "zero_threshold"):
        value = getattr(args, flag)
        if not (math.isfinite(value) and value >= 0):
            raise ProfileError(f"--{flag.replace('_', '-')} must be finite and >= 0, got {value}", code=2)
    if args.repeat < 1:
        raise ProfileError(f"--repeat must be >= 1, got {args.repeat}", code=2)
    if args.top is not None and args.top < 1:
        raise ProfileError(f"--top must be >= 1, got {args.top}", code=2)
    if sum(bool(x) for x in (args.model, args.checkpoint, args.compare)) > 1:
        raise ProfileError("give one of --model, --checkpoint and --compare", code=2)
    if args.compare and args.plot:
        raise ProfileError("--plot draws one model; it does not go with --compare", code=2)
    if args.model and args.model not in models.names():
        raise ProfileError(f"unknown model {args.model!r}; known models: {', '.join(models.names())}",
                           code=2)
    if args.json == "-" and args.csv == "-":
        raise ProfileError("only one of --json and --csv can go to stdout", code=2)


def _check_device(device: str) -> None:
    if device == "cpu":
        return  # NumPy on the CPU: no torch needed
    try:
        import torch
    except ImportError:
        raise ProfileError(f"--device {safe_text(device)} needs PyTorch: pip install torch",
                           code=2) from None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ProfileError(f"unknown device {safe_text(device)!r}", code=2) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ProfileError(f"device {safe_text(device)!r} asked for, but CUDA is not available here",
                           code=2)


def _source(args) -> sources.Source:
    if args.checkpoint:
        return sources.checkpoint(args.checkpoint)
    return sources.generated(args.model or models.DEFAULT, args.seed)


def _check_plot_format(path: str) -> None:
    from .plot import supported_formats
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    formats = supported_formats()
    if suffix not in formats:
        raise ProfileError(f"--plot {safe_text(path)}: unknown image format "
                           f"{safe_text(suffix or '(no suffix)')!r}; use one of {', '.join(formats)}",
                           code=2)


def _sorted_for_table(layers, sort: str, top: int | None):
    keys = {"penalty": lambda s: -s.penalty, "params": lambda s: -s.params, "name": lambda s: s.name}
    rows = sorted(layers, key=keys[sort]) if sort in keys else list(layers)
    return rows[:top] if top else rows


def build_report(source, collected, totals, args, shown: int) -> dict:
    import fastpenalty
    return {
        "fastpenalty_version": getattr(fastpenalty, "__version__", None),
        "source": {
            "label": source.label,
            "files": source.files,
            "notes": source.notes,
            "model": None if args.checkpoint else (args.model or models.DEFAULT),
            "checkpoint": args.checkpoint,
            "dtype": args.dtype,
            "seed": None if args.checkpoint else args.seed,
            "device": args.device,
        },
        "settings": {"l1": args.l1, "l2": args.l2, "zero_threshold": args.zero_threshold,
                     "exclude_default": not args.no_exclude, "sort": args.sort, "top": args.top},
        "layers": [s.as_dict() for s in collected.layers],
        "totals": totals,
        "timing": collected.timing,
        "skipped": [{"name": n, "reason": why} for n, why in collected.skipped],
        "shown": shown,
    }


def _main(args) -> int:
    from . import table, writers
    if getattr(args, "list_models", False):
        for name in models.names():
            print(f"{name:12s} {models.num_parameters(name):>15,}  {models.describe(name)}")
        return 0
    _check(args)
    _check_device(args.device)
    if args.compare:
        from .compare import run_compare
        return run_compare(args)
    source = _source(args)
    check_outputs({"json": args.json, "csv": args.csv, "plot": args.plot}, source.files)
    if args.plot:
        _check_plot_format(args.plot)  # needs matplotlib: fails before the work, not after it
    from .collect import profile_source
    collected, totals = profile_source(source, args, want_samples=bool(args.plot))
    shown = _sorted_for_table(collected.layers, args.sort, args.top)
    report = build_report(source, collected, totals, args, len(shown))
    wrote = []
    if args.json:
        writers.write_json(report, args.json)
        wrote.append(args.json)
    if args.csv:
        writers.write_csv(report, args.csv)
        wrote.append(args.csv)
    if args.plot:
        from .plot import write_plot
        write_plot(args.plot, collected.layers, collected.samples, source.label)
        wrote.append(args.plot)
    to_stdout = "-" in (args.json, args.csv)
    if not to_stdout:
        table.print_report(report, shown, use_rich=False if args.plain else None)
    for path in wrote:
        if path != "-":
            print(f"wrote {safe_text(path)}", file=sys.stderr if to_stdout else sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _main(args)
    except ProfileError as exc:
        print(f"fastpenalty profile: error: {safe_text(exc)}", file=sys.stderr)
        return exc.code
    except MemoryError:
        print("fastpenalty profile: error: out of memory (try --dtype bfloat16 or a smaller model)",
              file=sys.stderr)
        return 1
    except BrokenPipeError:  # stdout closed early (| head): not worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("fastpenalty profile: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastpenalty profile")
    add_arguments(parser)
    return run(parser.parse_args(argv))
