"""--compare A B: per-layer change of sum|w|, RMS, near-zero share and penalty between two
checkpoints (say, a model trained without and with the penalty). Each checkpoint is read the
same way as a single profile run (streamed, tied weights once); layers are matched by name."""

from __future__ import annotations

import math

from . import sources
from .collect import profile_source
from .terminal import safe_text

FIELDS = ("name", "in", "shape_a", "shape_b", "params_a", "params_b", "excluded",
          "l1_sum_a", "l1_sum_b", "l1_sum_change", "rms_a", "rms_b", "rms_change",
          "near_zero_share_a", "near_zero_share_b", "penalty_a", "penalty_b", "penalty_change")
COLUMNS = ("name", "params", "sum|w| A", "sum|w| B", "change", "RMS A", "RMS B", "change",
           "near 0 A", "near 0 B", "penalty A", "penalty B", "change")
_RIGHT = set(COLUMNS) - {"name"}


def change(a, b) -> float | None:
    """(b - a) / a, or None when a is 0 or either side is missing."""
    if a is None or b is None or a == 0 or math.isnan(a) or math.isnan(b):
        return None
    return (b - a) / a


def _side(layer, suffix: str) -> dict:
    if layer is None:
        return {f"{k}_{suffix}": None for k in ("shape", "params", "l1_sum", "rms",
                                                "near_zero_share", "penalty")}
    return {f"shape_{suffix}": list(layer.shape), f"params_{suffix}": layer.params,
            f"l1_sum_{suffix}": layer.l1_sum, f"rms_{suffix}": layer.rms,
            f"near_zero_share_{suffix}": layer.near_zero_share, f"penalty_{suffix}": layer.penalty}


def match_layers(a_layers, b_layers) -> list[dict]:
    """One row per name, in A's order, then the names only B has."""
    b_by_name = {s.name: s for s in b_layers}
    a_names = {s.name for s in a_layers}
    rows = []
    for a, b in [(s, b_by_name.get(s.name)) for s in a_layers] + \
                [(None, s) for s in b_layers if s.name not in a_names]:
        either = a or b
        row = {"name": either.name, "in": "both" if a and b else ("A only" if a else "B only"),
               "excluded": either.excluded, **_side(a, "a"), **_side(b, "b")}
        for key in ("l1_sum", "rms", "penalty"):
            row[f"{key}_change"] = change(row[f"{key}_a"], row[f"{key}_b"])
        rows.append(row)
    return rows


def _percent(value) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _number(value, fmt) -> str:
    return "-" if value is None else format(value, fmt)


def _table_row(r) -> list[str]:
    params = r["params_a"] if r["params_a"] is not None else r["params_b"]
    name = safe_text(r["name"]) + ("" if r["in"] == "both" else f" ({r['in']})") \
        + (" (excluded)" if r["excluded"] else "")
    if r["in"] == "both" and r["shape_a"] != r["shape_b"]:
        name += f" (shape {'x'.join(map(str, r['shape_a']))} -> {'x'.join(map(str, r['shape_b']))})"
    return [name, f"{params:,}",
            _number(r["l1_sum_a"], ".4g"), _number(r["l1_sum_b"], ".4g"), _percent(r["l1_sum_change"]),
            _number(r["rms_a"], ".3g"), _number(r["rms_b"], ".3g"), _percent(r["rms_change"]),
            _number(r["near_zero_share_a"], ".1%"), _number(r["near_zero_share_b"], ".1%"),
            _number(r["penalty_a"], ".4g"), _number(r["penalty_b"], ".4g"), _percent(r["penalty_change"])]


def _total_row(ta, tb) -> list[str]:
    return ["total", f"{ta['params']:,} / {tb['params']:,}",
            f"{ta['l1_sum']:.4g}", f"{tb['l1_sum']:.4g}", _percent(change(ta["l1_sum"], tb["l1_sum"])),
            f"{ta['rms']:.3g}", f"{tb['rms']:.3g}", _percent(change(ta["rms"], tb["rms"])),
            f"{ta['near_zero_share']:.1%}", f"{tb['near_zero_share']:.1%}",
            f"{ta['penalty']:.4g}", f"{tb['penalty']:.4g}", _percent(change(ta["penalty"], tb["penalty"]))]


def _read(source, args):
    collected, totals = profile_source(source, args)
    return collected.layers, totals


def run_compare(args) -> int:
    from . import table, writers
    from .outputs import check_outputs
    a_path, b_path = args.compare
    a_source, b_source = sources.checkpoint(a_path), sources.checkpoint(b_path)
    check_outputs({"json": args.json, "csv": args.csv}, a_source.files + b_source.files)
    args.no_timing = True
    (a_layers, ta), (b_layers, tb) = _read(a_source, args), _read(b_source, args)
    rows = match_layers(a_layers, b_layers)
    report = {"source": {"a": a_source.label, "b": b_source.label},
              "settings": {"l1": args.l1, "l2": args.l2, "zero_threshold": args.zero_threshold,
                           "exclude_default": not args.no_exclude},
              "layers": rows, "totals": {"a": ta, "b": tb}}
    if args.json:
        writers.write_json(report, args.json)
    if args.csv:
        writers.write_rows_csv(args.csv, FIELDS, rows)
    if "-" not in (args.json, args.csv):
        print(f"fastpenalty profile --compare\n  A: {safe_text(a_source.label)}\n"
              f"  B: {safe_text(b_source.label)}")
        print(f"penalty l1={args.l1:g} l2={args.l2:g}; near zero means |w| <= {args.zero_threshold:g}; "
              "change is (B - A) / A\n")
        table.print_table([list(COLUMNS)] + [_table_row(r) for r in rows] + [_total_row(ta, tb)],
                          _RIGHT, use_rich=False if args.plain else None)
        only = [sum(r["in"] == side for r in rows) for side in ("A only", "B only")]
        print(f"\n{sum(r['in'] == 'both' for r in rows)} tensors in both, {only[0]} only in A, "
              f"{only[1]} only in B; penalty (penalized tensors) {ta['penalty']:.6g} -> {tb['penalty']:.6g}")
    for path in (args.json, args.csv):
        if path and path != "-":
            print(f"wrote {safe_text(path)}")
    return 0
