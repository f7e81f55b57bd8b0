"""bench/bench_torch_model.py: a whole model's parameter list in PyTorch, and a Keras 3 step.

fastpenalty.torch.Penalty(params, l1, l2).accumulate_() (gradients pre-allocated) against
torch._foreach_add_(grads, params) (12 bytes per float32 element), eager autograd, the best
torch._foreach_* code, and torch.compile of a hand-fused loop (compile time apart); then a
Keras 3 (torch backend) training step with fastpenalty.keras vs keras.regularizers.
"""

from __future__ import annotations

import argparse
import sys

from .buffers import DTYPES
from .cli import add_settings_arguments, apply_threads, finish, settings_from
from .machine import run_facts as make_run_facts
from .runner import make_context, measure_all
from .suites import Options, keras_case, model_case

MODEL = "gpt2-small"
QUICK_MODEL = "mlp-tiny"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_settings_arguments(parser)
    parser.add_argument("--model", help=f"built-in model (default {MODEL}; {QUICK_MODEL} with --quick)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default %(default)s")
    parser.add_argument("--dtype", default="float32", choices=DTYPES, help="default %(default)s")
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    parser.add_argument("--no-keras", action="store_true", help="leave the Keras training step out")


def run(args) -> int:
    from fastpenalty import models

    model = args.model or (QUICK_MODEL if args.quick else MODEL)
    if model not in models.names():
        print(f"error: unknown model {model!r}; built-in: {', '.join(models.names())}", file=sys.stderr)
        return 2
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
            return 2
    apply_threads(args.threads)
    options = Options(dtype=args.dtype, l1=args.l1, l2=args.l2, compile=not args.no_compile, quick=args.quick)
    facts = make_run_facts(args.quick)
    ctx = make_context(args.device, args.quick, settings_from(args), facts)
    print(f"# {ctx.device} | fastpenalty {facts['fastpenalty_version']} | torch {facts['torch_version']}\n")
    cases = [model_case(model, numpy_api=False)] + ([] if args.no_keras else [keras_case()])
    rows = []
    for case in cases:
        rows += measure_all(case.make_groups(ctx, options), ctx)
    finish(rows, args.out, "torch_model", facts)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/bench_torch_model.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
