"""Plain-text tables for the terminal: one per measured group, then the targets."""

from __future__ import annotations

import math

from .harness import GroupResult, candidate_metrics, percentiles


def format_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def format_bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def _spread(p20: float, p50: float, p80: float, fmt: str) -> str:
    return f"{p50:{fmt}} ({p20:{fmt}}-{p80:{fmt}})"


def _table(header: list, body: list) -> str:
    widths = [max(len(str(row[i])) for row in [header] + body) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_group(result: GroupResult) -> str:
    group = result.group
    figures = {}
    for provider, variant, metric, _unit, samples in candidate_metrics(result):
        label = f"{provider}[{variant}]" if variant else provider
        figures.setdefault(label, {})[metric] = percentiles(samples)
    probe = group.probe.label if group.probe else "none"
    isa = f" | {group.isa}" if group.isa else ""
    title = (f"{group.case} | {group.api} {group.mode} | {group.dtype}{isa} | {group.n_elements:,} elements in "
             f"{group.n_tensors} tensor(s) | {format_bytes(group.bytes_per_call)}/call | probe: {probe} | "
             f"{result.rounds} rounds")
    header = ["candidate", "time p50 (p20-p80)", "GB/s", "of probe", "fastpenalty speed-up", "compile"]
    body = []
    for label, metrics in figures.items():
        def get(metric, fmt, _m=metrics):
            return _spread(*_m[metric], fmt) if metric in _m else "-"
        time_cell = "-"
        if "time_s" in metrics:
            p20, p50, p80 = metrics["time_s"]
            time_cell = f"{format_seconds(p50)} ({format_seconds(p20)}-{format_seconds(p80)})"
        gbps = f"{metrics['gbps'][1]:.1f}" if "gbps" in metrics else "-"
        compile_cell = format_seconds(metrics["compile_time_s"][1]) if "compile_time_s" in metrics else ""
        body.append([label, time_cell, gbps, get("fraction_of_probe", ".2f"), get("fastpenalty_speedup", ".2f"),
                     compile_cell])
    text = title + "\n" + _table(header, body) + "\n"
    for label, value, ref in result.value_mismatches:
        text += f"  value mismatch: {label} = {value!r}, fastpenalty = {ref!r}\n"
    return text


def format_targets(verdicts: list) -> str:
    if not verdicts:
        return "targets: none apply (sizes below the memory-bound range, or no peer measured)\n"
    lines = ["targets (p50):"]
    for v in verdicts:
        lines.append(f"  {'PASS' if v.passed else 'MISS'}  {v.where} [{v.device}]: {v.target.text}: {v.value:.2f}")
    return "\n".join(lines) + "\n"
