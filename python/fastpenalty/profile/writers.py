"""Machine-readable output: JSON (everything) and CSV (one row per tensor plus a total row).
Both always hold every tensor in model order; --sort and --top only shape the printed table."""

from __future__ import annotations

import csv
import json
import math
import sys

from .errors import ProfileError

CSV_FIELDS = ("name", "shape", "dtype", "params", "l1_sum", "l2_sum", "rms", "max_abs",
              "near_zero", "near_zero_share", "penalty", "penalty_share", "excluded")


def _finite_or_none(value):
    return value if not (isinstance(value, float) and not math.isfinite(value)) else None


def _clean(obj):
    """JSON has no NaN/Inf: those become null."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _finite_or_none(obj)


def _open(path: str):
    if path == "-":
        return sys.stdout, False
    try:
        return open(path, "w", newline="", encoding="utf-8"), True
    except OSError as exc:
        raise ProfileError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json(report: dict, path: str) -> None:
    doc = {k: v for k, v in report.items() if k != "shown"}
    out, close = _open(path)
    try:
        json.dump(_clean(doc), out, indent=1)
        out.write("\n")
    finally:
        if close:
            out.close()


def write_csv(report: dict, path: str) -> None:
    out, close = _open(path)
    try:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for layer in report["layers"]:
            row = {k: layer[k] for k in CSV_FIELDS}
            row["shape"] = "x".join(str(d) for d in layer["shape"])
            row["penalty_share"] = "" if layer["penalty_share"] is None else layer["penalty_share"]
            writer.writerow(row)
        t = report["totals"]
        writer.writerow({
            "name": "(total)", "shape": "", "dtype": "", "params": t["params"],
            "l1_sum": t["l1_sum"], "l2_sum": t["l2_sum"], "rms": t["rms"], "max_abs": t["max_abs"],
            "near_zero": t["near_zero"], "near_zero_share": t["near_zero_share"],
            "penalty": t["penalty"], "penalty_share": 1.0, "excluded": "",
        })
    finally:
        if close:
            out.close()
