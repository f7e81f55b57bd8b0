"""The human-readable report: header, per-layer table, totals and the timing line.
Plain text always works; ``rich`` draws the table when it is installed and stdout is a terminal."""

from __future__ import annotations

import sys

from .terminal import safe_text

COLUMNS = ("name", "shape", "dtype", "params", "sum|w|", "sum w^2", "RMS", "max|w|",
           "near 0", "penalty", "share")
_RIGHT = {"params", "sum|w|", "sum w^2", "RMS", "max|w|", "near 0", "penalty", "share"}


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape) if len(shape) else "scalar"


def _row(s) -> list[str]:
    share = "excluded" if s.excluded else f"{s.penalty_share:.2%}"
    name = safe_text(s.name) + (f" (tied: {', '.join(safe_text(t) for t in s.tied)})" if s.tied else "")
    return [name, shape_text(s.shape), s.dtype, f"{s.params:,}", f"{s.l1_sum:.4g}",
            f"{s.l2_sum:.4g}", f"{s.rms:.3g}", f"{s.max_abs:.3g}", f"{s.near_zero_share:.1%}",
            f"{s.penalty:.4g}", share]


def _total_row(t) -> list[str]:
    return ["total", f"{t['tensors']} tensors", "", f"{t['params']:,}", f"{t['l1_sum']:.4g}",
            f"{t['l2_sum']:.4g}", f"{t['rms']:.3g}", f"{t['max_abs']:.3g}",
            f"{t['near_zero_share']:.1%}", f"{t['penalty']:.4g}", "100.00%"]


def header_lines(report) -> list[str]:
    t, s = report["totals"], report["settings"]
    lines = [
        f"fastpenalty profile: {safe_text(report['source']['label'])}",
        f"{t['tensors']} tensors, {t['params']:,} parameters on {report['source']['device']}; "
        f"penalty l1={s['l1']:g} l2={s['l2']:g}; near zero means |w| <= {s['zero_threshold']:g}",
    ]
    if t["tied_names"]:
        verb = "name shares" if t["tied_names"] == 1 else "names share"
        lines.append(f"{t['tied_names']} {verb} storage with another tensor (tied weights): "
                     "each tied tensor is counted once")
    return lines + [safe_text(note) for note in report["source"]["notes"]]


def footer_lines(report) -> list[str]:
    t = report["totals"]
    lines = [
        f"penalized: {t['penalized_tensors']} tensors, {t['penalized_params']:,} parameters, "
        f"penalty {t['penalty']:.6g}",
        f"excluded by default (biases, norms): {t['excluded_tensors']} tensors, "
        f"{t['excluded_params']:,} parameters (they would add {t['penalty_of_excluded']:.4g})"
        if report["settings"]["exclude_default"] else "excluded: none (--no-exclude)",
    ]
    if report["shown"] < t["tensors"]:
        lines.append(f"(table shows {report['shown']} of {t['tensors']} tensors, "
                     f"sorted by {report['settings']['sort']}; totals cover all)")
    skipped = report["skipped"]
    if skipped:
        names = ", ".join(f"{safe_text(d['name'])} ({safe_text(d['reason'])})" for d in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        lines.append(f"skipped {len(skipped)} non-weight tensors: {names}{more}")
    timing = report["timing"]
    if timing:
        ratio = timing["eager_over_fused"]
        lines.append(
            f"timing over the {timing['tensors']} penalized tensors ({timing['elements']:,} elements), "
            f"median of {timing['repeats']}"
            + (f", summed over {timing['groups']} shards" if timing["groups"] > 1 else "")
            + f": fused {timing['fused']} {_ms(timing['fused_s'])}, "
            f"eager {timing['eager'].split(':')[0].replace(' eager', '')} {_ms(timing['eager_s'])}"
            + (f", eager/fused {ratio:.2f}" if ratio is not None else ""))
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _plain_table(rows: list[list[str]], right: set, out) -> None:
    columns = rows[0]
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    for k, r in enumerate(rows):
        cells = [c.rjust(w) if columns[i] in right else c.ljust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        print("  ".join(cells).rstrip(), file=out)
        if k == 0 or k == len(rows) - 2:
            print("  ".join("-" * w for w in widths), file=out)


def _rich_table(rows: list[list[str]], right: set) -> bool:
    try:
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        return False
    table = Table(show_footer=False, header_style="bold")
    for c in rows[0]:
        table.add_column(c, justify="right" if c in right else "left", no_wrap=True)
    for k, r in enumerate(rows[1:]):  # Text cells: checkpoint names are never read as markup
        table.add_row(*map(Text, r), end_section=(k == len(rows) - 3), style="bold" if k == len(rows) - 2 else None)
    Console().print(table)
    return True


def print_table(rows: list[list[str]], right: set, out=None, use_rich: bool | None = None) -> None:
    """rows[0] is the header and rows[-1] the total row."""
    rows = [[safe_text(c) for c in r] for r in rows]  # idempotent: already-escaped text stays as is
    out = out or sys.stdout
    if use_rich is None:
        use_rich = out is sys.stdout and sys.stdout.isatty()
    if not (use_rich and _rich_table(rows, right)):
        _plain_table(rows, right, out)


def print_report(report, layers, out=None, use_rich: bool | None = None) -> None:
    out = out or sys.stdout
    for line in header_lines(report):
        print(line, file=out)
    print(file=out)
    rows = [list(COLUMNS)] + [_row(s) for s in layers] + [_total_row(report["totals"])]
    print_table(rows, _RIGHT, out, use_rich)
    print(file=out)
    for line in footer_lines(report):
        print(line, file=out)
