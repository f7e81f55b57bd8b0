"""Long-format result rows (one figure per row) and their CSV file."""

from __future__ import annotations

import csv
import os

from .harness import GroupResult, candidate_metrics, percentiles
from .machine import provider_version

COLUMNS = (
    "timestamp", "run_id", "quick",
    "case", "api", "mode", "provider", "variant", "metric", "unit",
    "p20", "p50", "p80", "repeats",
    "n_elements", "n_tensors", "dtype", "bytes_per_call",
    "device", "device_type", "threads", "isa",
    "version", "fastpenalty_version", "torch_version", "numpy_version", "keras_version", "python_version",
)


def rows_for(result: GroupResult, run_facts: dict, device: str, device_type: str) -> list:
    group = result.group
    rows = []
    for provider, variant, metric, unit, samples in candidate_metrics(result):
        p20, p50, p80 = percentiles(samples)
        row = dict(run_facts)
        row.update(
            case=group.case, api=group.api, mode=group.mode, provider=provider, variant=variant,
            metric=metric, unit=unit, p20=p20, p50=p50, p80=p80, repeats=len(samples),
            n_elements=group.n_elements, n_tensors=group.n_tensors, dtype=group.dtype,
            bytes_per_call=group.bytes_per_call, device=device, device_type=device_type,
            threads=group.threads, isa=group.isa, version=provider_version(provider, run_facts),
        )
        rows.append({k: row.get(k, "") for k in COLUMNS})
    return rows


def default_csv_path(directory: str, stem: str, run_facts: dict) -> str:
    stamp = run_facts["timestamp"].replace(":", "").replace("-", "").split("+")[0]
    suffix = "-quick" if run_facts.get("quick") else ""
    return os.path.join(directory, f"{stem}-{stamp}{suffix}.csv")


def resolve_out(out: str, stem: str, run_facts: dict) -> str:
    """``out`` is a .csv file or a folder to put an automatically named one in."""
    if out.endswith(".csv"):
        return out
    return default_csv_path(out, stem, run_facts)


def write_csv(path: str, rows: list) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _format(row[k]) for k in COLUMNS})


def _format(value):
    if isinstance(value, float):
        return repr(value)
    return value


NUMERIC_COLUMNS = ("p20", "p50", "p80")
INT_COLUMNS = ("repeats", "n_elements", "n_tensors", "bytes_per_call", "threads", "quick")


def read_csv(path: str) -> list:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in NUMERIC_COLUMNS:
            row[key] = float(row[key])
        for key in INT_COLUMNS:
            row[key] = int(row[key]) if row.get(key) not in (None, "") else 0
    return rows
