"""Machine-readable output: JSON (everything) and CSV (one row per tensor plus a total row).
Both always hold every tensor in model order; --sort and --top only shape the printed table."""

from __future__ import annotations

import csv
import json
import math
import sys

from .outputs import write_atomically
from .terminal import safe_text

CSV_FIELDS = ("name", "shape", "dtype", "params", "l1_sum", "l2_sum", "rms", "max_abs",
              "near_zero", "near_zero_share", "penalty", "penalty_share", "excluded", "tied")


def _finite_or_none(value):
    return value if not (isinstance(value, float) and not math.isfinite(value)) else None


def _clean(obj):
    """JSON has no NaN/Inf: those become null."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _finite_or_none(obj)


def _write(path: str, fill) -> None:
    """fill(file) writes the document: to stdout for '-', else whole-or-nothing to ``path``."""
    if path == "-":
        fill(sys.stdout)
    else:
        write_atomically(path, fill)


def write_json(report: dict, path: str) -> None:
    doc = {k: v for k, v in report.items() if k != "shown"}
    # ensure_ascii: control characters in names reach a terminal only as \u escapes
    _write(path, lambda out: out.write(json.dumps(_clean(doc), indent=1) + "\n"))


def write_csv(report: dict, path: str) -> None:
    # a name's control characters are escaped only on a terminal; a file gets the names as stored
    name = safe_text if path == "-" and sys.stdout.isatty() else str
    _write(path, lambda out: _fill_csv(report, out, name))


def _fill_csv(report: dict, out, name) -> None:
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for layer in report["layers"]:
        row = {k: layer[k] for k in CSV_FIELDS}
        row["name"] = name(layer["name"])
        row["tied"] = " ".join(name(n) for n in layer["tied"])
        row["shape"] = "x".join(str(d) for d in layer["shape"])
        row["penalty_share"] = "" if layer["penalty_share"] is None else layer["penalty_share"]
        writer.writerow(row)
    t = report["totals"]
    writer.writerow({
        "name": "(total)", "shape": "", "dtype": "", "params": t["params"],
        "l1_sum": t["l1_sum"], "l2_sum": t["l2_sum"], "rms": t["rms"], "max_abs": t["max_abs"],
        "near_zero": t["near_zero"], "near_zero_share": t["near_zero_share"],
        "penalty": t["penalty"], "penalty_share": 1.0, "excluded": "", "tied": "",
    })


def write_rows_csv(path: str, fields: tuple, rows: list[dict]) -> None:
    """A plain CSV of ``rows`` (dicts with ``fields``), e.g. the --compare table."""
    name = safe_text if path == "-" and sys.stdout.isatty() else str

    def fill(out):
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "name": name(row["name"])})
    _write(path, fill)
