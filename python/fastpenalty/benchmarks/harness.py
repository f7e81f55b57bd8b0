"""The one measurement loop: candidates timed interleaved with a probe, per round.

A round runs ``probe, c1, probe, c2, ..., probe``; each candidate is compared with the mean
of the two probe calls around it, so a bandwidth drift of seconds or minutes cancels out of
the ratio. Per-round ratios are kept, and percentiles are taken over rounds.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

PERCENTILES = (20, 50, 80)
SUBJECT = "fastpenalty"
PROBE = "probe"


@dataclass
class Candidate:
    """One way of doing the work. ``fn`` takes no arguments and returns the penalty value
    (a float, a 0-dim tensor) or None when it computes none (the probes)."""


    provider: str
    fn: Callable[[], object]
    variant: str = ""
    compare: bool = True  # False: a reference point (probe, floor), no fastpenalty speed-up against it

    @property
    def label(self) -> str:
        return f"{self.provider}[{self.variant}]" if self.variant else self.provider


@dataclass
class Group:
    """Candidates measured together, against one probe, on the same buffers.

    The first candidate whose provider is ``fastpenalty`` is the subject: every other
    candidate gets a ``fastpenalty_speedup`` (its time / the subject's, same round).
    ``bytes_per_call`` is the least memory traffic the work needs (e.g. 12 bytes per
    float32 element for g += grad(w)); GB/s figures use it for every candidate.
    """

    case: str
    api: str  # "numpy" | "torch" | "keras": the kind of input every candidate takes
    mode: str
    n_elements: int
    n_tensors: int
    dtype: str
    bytes_per_call: int
    candidates: list
    probe: Optional[Candidate] = None
    isa: str = ""
    threads: int = 0
    # single-shot figures measured while building the group, e.g. {("torch_compile", ""): {"compile_time_s": 41.0}}
    one_off: dict = field(default_factory=dict)
    # close values for float32/float64: relative tolerance when comparing candidates' values
    value_rtol: Optional[float] = None
    teardown: Optional[Callable[[], None]] = None

    def subject(self) -> Optional[Candidate]:
        return next((c for c in self.candidates if c.provider == SUBJECT), None)


@dataclass
class Settings:
    warmup: int = 3
    repeats: int = 21
    min_repeats: int = 5
    max_seconds: float = 60.0  # per group; stops early once min_repeats rounds are done


@dataclass
class GroupResult:
    group: Group
    rounds: int
    probe_times: list  # every probe call, all rounds
    times: dict  # label -> per-round seconds
    probe_around: dict  # label -> per-round mean of the probe calls around it
    value_mismatches: list  # (label, value, subject value)


def percentiles(values) -> tuple:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return (math.nan,) * len(PERCENTILES)
    return tuple(float(x) for x in np.percentile(arr, PERCENTILES))


def cpu_timer(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_cuda_timer(torch_module):
    """Times one call with CUDA events, the device idle before it, so host-side launch
    overhead the user would pay is inside the measured span."""
    start = torch_module.cuda.Event(enable_timing=True)
    end = torch_module.cuda.Event(enable_timing=True)

    def timer(fn):
        torch_module.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    return timer


def _as_float(value) -> Optional[float]:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _drop_failing_peers(group: Group) -> dict:
    """Calls every candidate once, untimed; a peer that raises is left out with a warning
    (fastpenalty raising is an error). Returns {label: value as a float or None}."""
    values, kept = {}, []
    for cand in group.candidates:
        try:
            values[cand.label] = _as_float(cand.fn())
        except Exception as exc:
            if cand.provider == SUBJECT:
                raise
            print(f"warning: {group.case}/{group.mode}: {cand.label} failed, left out: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            continue
        kept.append(cand)
    group.candidates = kept
    return values


def check_values(group: Group) -> list:
    """Calls every candidate once (untimed) and compares its value with the subject's."""
    values = _drop_failing_peers(group)
    subject = group.subject()
    if group.value_rtol is None or subject is None:
        return []
    ref = values.get(subject.label)
    mismatches = []
    for label, value in values.items():
        if value is None or ref is None or not (math.isfinite(value) and math.isfinite(ref)):
            continue
        if abs(value - ref) > group.value_rtol * abs(ref) + 1e-12:
            mismatches.append((label, value, ref))
    return mismatches


def measure_group(group: Group, settings: Settings, timer=cpu_timer, clock=time.perf_counter) -> GroupResult:
    mismatches = check_values(group)
    for label, value, ref in mismatches:
        print(f"warning: {group.case}/{group.mode}: {label} gives {value!r}, fastpenalty {ref!r}", file=sys.stderr)

    probe = group.probe
    labels = [c.label for c in group.candidates]
    times = {label: [] for label in labels}
    around = {label: [] for label in labels}
    probe_times = []

    # Each round starts one candidate later: the first call after the round's opening probe
    # measured 1-2% slower than the same build later in the round (bench/README.md).
    def one_round(record: bool, first: int = 0):
        before = timer(probe.fn) if probe else math.nan
        if record and probe:
            probe_times.append(before)
        k = first % max(len(group.candidates), 1)
        for cand in group.candidates[k:] + group.candidates[:k]:
            t = timer(cand.fn)
            after = timer(probe.fn) if probe else math.nan
            if record:
                times[cand.label].append(t)
                around[cand.label].append((before + after) / 2)
                if probe:
                    probe_times.append(after)
            before = after

    for _ in range(settings.warmup):
        one_round(record=False)
    start = clock()
    rounds = 0
    while rounds < settings.repeats:
        one_round(record=True, first=rounds)
        rounds += 1
        if rounds >= settings.min_repeats and clock() - start > settings.max_seconds:
            break
    return GroupResult(group, rounds, probe_times, times, around, mismatches)


def candidate_metrics(result: GroupResult) -> list:
    """(provider, variant, metric, unit, samples) for every figure a group yields."""
    group = result.group
    out = []
    if group.probe is not None and result.probe_times:
        out.append((group.probe.provider, group.probe.variant, "time_s", "s", result.probe_times))
        if group.bytes_per_call > 0:
            out.append((group.probe.provider, group.probe.variant, "gbps", "GB/s",
                        [group.bytes_per_call / t / 1e9 for t in result.probe_times]))
    subject = group.subject()
    subject_times = result.times[subject.label] if subject else None
    for cand in group.candidates:
        ts = result.times[cand.label]
        out.append((cand.provider, cand.variant, "time_s", "s", ts))
        if group.bytes_per_call > 0:
            out.append((cand.provider, cand.variant, "gbps", "GB/s", [group.bytes_per_call / t / 1e9 for t in ts]))
        if group.probe is not None:
            out.append((cand.provider, cand.variant, "fraction_of_probe", "ratio",
                        [p / t for p, t in zip(result.probe_around[cand.label], ts)]))
        if subject_times is not None and cand is not subject and cand.compare:
            out.append((cand.provider, cand.variant, "fastpenalty_speedup", "x",
                        [t / s for t, s in zip(ts, subject_times)]))
    for (provider, variant), figures in group.one_off.items():
        for metric, value in figures.items():
            out.append((provider, variant, metric, "s" if metric.endswith("_s") else "", [value]))
    return out
