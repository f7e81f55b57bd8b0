"""Measures groups one after the other, prints each table, collects the CSV rows."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field
from typing import Callable

from . import machine
from .harness import Settings, cpu_timer, make_cuda_timer, measure_group
from .report import format_group
from .results import rows_for

FULL_SETTINGS = Settings(warmup=3, repeats=21, min_repeats=5, max_seconds=60.0)
QUICK_SETTINGS = Settings(warmup=1, repeats=5, min_repeats=3, max_seconds=5.0)


@dataclass
class Context:
    device_type: str  # "cpu" | "cuda"
    settings: Settings
    run_facts: dict
    device: str = ""
    timer: Callable = cpu_timer
    out: object = sys.stdout
    rows: list = field(default_factory=list)


def core_threads_and_isa() -> tuple:
    from fastpenalty import _core

    return _core.get_num_threads(), _core.get_isa()


def make_context(device_type: str, quick: bool, settings: Settings = None, run_facts: dict = None) -> Context:
    settings = settings or (QUICK_SETTINGS if quick else FULL_SETTINGS)
    run_facts = run_facts or machine.run_facts(quick)
    if device_type == "cuda":
        import torch

        return Context("cuda", settings, run_facts, machine.cuda_device(torch), make_cuda_timer(torch))
    threads, isa = core_threads_and_isa()
    return Context("cpu", settings, run_facts, machine.cpu_device(threads, isa), cpu_timer)


def measure_all(groups, ctx: Context) -> list:
    """Measures every group ``groups`` yields (built lazily, so big buffers of one case are
    freed before the next is made); returns and keeps the rows."""
    rows = []
    for group in groups:
        result = measure_group(group, ctx.settings, ctx.timer)
        print(format_group(result), file=ctx.out, flush=True)
        rows.extend(rows_for(result, ctx.run_facts, ctx.device, ctx.device_type))
        if group.teardown:
            group.teardown()
        del group, result
        gc.collect()
    ctx.rows.extend(rows)
    return rows
