"""The named cases of ``python -m fastpenalty bench`` and the two bench/ scripts.

A case makes its groups lazily, one input set at a time, so a 10^8-element case's buffers
are gone before the next case allocates its own.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from typing import Callable, Iterable

from .buffers import numpy_weights
from .cases_keras import FULL_MLP, QUICK_MLP, KerasUnavailable, keras_groups
from .cases_numpy import numpy_groups
from .cases_torch import torch_groups
from .runner import Context, core_threads_and_isa

TENSOR_SIZES = (10**6, 10**7, 10**8)
QUICK_TENSOR_SIZES = (10**5, 10**6)
QUICK_MODELS = ("mlp-tiny",)
LARGEST_DEFAULT_MODEL = 200_000_000  # bigger built-in models run only when named in --cases


@dataclass
class Options:
    dtype: str = "float32"
    l1: float = 1e-5
    l2: float = 1e-4
    compile: bool = True
    quick: bool = False


@dataclass
class Case:
    name: str
    make_groups: Callable[[Context, Options], Iterable]
    default: bool = True


def size_label(n: int) -> str:
    """3e7 for 30,000,000; other counts as plain digits."""
    digits = str(n)
    if len(digits) > 1 and digits[1:] == "0" * (len(digits) - 1):
        return f"{digits[0]}e{len(digits) - 1}"
    return digits


def parse_size(text: str) -> int:
    value = float(text)
    if value < 1 or value != int(value):
        raise ValueError(f"not an element count: {text!r}")
    return int(value)


def _cpu_facts():
    threads, isa = core_threads_and_isa()
    return dict(isa=isa, threads=threads)


def _have_torch() -> bool:
    """Whether torch can be imported; without it only the NumPy (and Keras) groups run."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_groups_unless_missing(name: str, make_tensors, ctx: Context, opts: Options):
    if not _have_torch():
        if ctx.device_type == "cpu":
            print(f"{name}: torch groups left out: torch is not installed", file=sys.stderr)
        return
    yield from torch_groups(name, make_tensors(), opts.l1, opts.l2, device_type=ctx.device_type,
                            compile=opts.compile, **_torch_facts(ctx))


def _torch_weights(n: int, dtype: str, device: str):
    import torch

    generator = torch.Generator(device=device).manual_seed(0)
    w = torch.randn(n, generator=generator, device=device, dtype=torch.float32)
    w *= 0.05
    return w.to(getattr(torch, dtype))


def _torch_facts(ctx: Context) -> dict:
    if not _have_torch():
        return _cpu_facts()
    import torch

    if ctx.device_type == "cpu":
        return dict(isa=core_threads_and_isa()[1], threads=torch.get_num_threads())
    return dict(isa="", threads=0)


def tensor_case(n: int) -> Case:
    name = f"tensor-{size_label(n)}"

    def groups(ctx: Context, opts: Options):
        if ctx.device_type == "cpu":
            ws = [numpy_weights(n, opts.dtype)]
            yield from numpy_groups(name, ws, opts.l1, opts.l2, **_cpu_facts())
            del ws
        yield from _torch_groups_unless_missing(
            name, lambda: [_torch_weights(n, opts.dtype, ctx.device_type)], ctx, opts)

    return Case(name, groups)


def model_case(model: str, default: bool = True, numpy_api: bool = True) -> Case:
    name = f"model-{model}"

    def groups(ctx: Context, opts: Options):
        from fastpenalty import models

        if ctx.device_type == "cpu" and numpy_api:
            arrays = list(models.materialize(model, dtype=opts.dtype, backend="numpy").values())
            yield from numpy_groups(name, arrays, opts.l1, opts.l2, **_cpu_facts())
            del arrays
        yield from _torch_groups_unless_missing(name, lambda: list(models.materialize(
            model, dtype=opts.dtype, backend="torch", device=ctx.device_type).values()), ctx, opts)

    return Case(name, groups, default)


def keras_case() -> Case:
    def groups(ctx: Context, opts: Options):
        shape = QUICK_MLP if opts.quick else FULL_MLP
        try:
            made = keras_groups("keras-mlp", shape, opts.l1, opts.l2, device_type=ctx.device_type,
                                threads=_torch_facts(ctx)["threads"])
        except KerasUnavailable as exc:
            print(f"keras-mlp left out: {exc}", file=sys.stderr)
            return
        yield from made

    return Case("keras-mlp", groups)


def all_cases(quick: bool) -> list:
    from fastpenalty import models

    sizes = QUICK_TENSOR_SIZES if quick else TENSOR_SIZES
    cases = [tensor_case(n) for n in sizes]
    for model in models.names():
        if quick:
            default = model in QUICK_MODELS
        else:
            default = models.num_parameters(model) <= LARGEST_DEFAULT_MODEL and model not in QUICK_MODELS
        cases.append(model_case(model, default))
    cases.append(keras_case())
    return cases


def select_cases(patterns: list, quick: bool) -> list:
    """Cases named by ``patterns`` (names, globs, or a prefix such as 'tensor' or 'model');
    'tensor-<n>' also makes a tensor case of any size. No patterns: the default cases."""
    cases = all_cases(quick)
    if not patterns:
        return [c for c in cases if c.default]
    chosen = []
    for pattern in patterns:
        hits = [c for c in cases if c.name == pattern or fnmatch.fnmatch(c.name, pattern)
                or c.name.startswith(pattern + "-")]
        if pattern in ("tensor", "model"):
            hits = [c for c in hits if c.default]
        if not hits and pattern.startswith("tensor-"):
            hits = [tensor_case(parse_size(pattern[len("tensor-"):]))]
        if not hits:
            raise ValueError(f"no benchmark case matches {pattern!r}; known: {', '.join(c.name for c in cases)}")
        chosen += [c for c in hits if c.name not in {d.name for d in chosen}]
    return chosen
