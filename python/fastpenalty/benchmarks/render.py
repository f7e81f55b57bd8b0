"""bench/render_readme_table.py: markdown from one or more results CSVs."""

from __future__ import annotations

import argparse
import fnmatch
import glob
import os
import sys

from .cli import DEFAULT_OUT
from .markdown import render
from .results import read_csv


def newest_csv(folder: str):
    paths = glob.glob(os.path.join(folder, "*.csv"))
    return max(paths, key=os.path.getmtime) if paths else None


def _kept(value: str, patterns) -> bool:
    if not patterns:
        return True
    return any(fnmatch.fnmatch(value, p.strip()) for p in patterns.split(",") if p.strip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench/render_readme_table.py", description=__doc__)
    parser.add_argument("csv", nargs="*", help=f"results CSV(s) (default: the newest in {DEFAULT_OUT}/)")
    parser.add_argument("--out", help="write the markdown here instead of printing it")
    parser.add_argument("--cases", help="comma-separated case globs to keep (default: all)")
    parser.add_argument("--modes", help="comma-separated modes to keep, e.g. accumulate (default: all)")
    args = parser.parse_args(argv)
    paths = args.csv or [p for p in [newest_csv(DEFAULT_OUT)] if p]
    if not paths:
        print(f"error: no CSV given and none found in {DEFAULT_OUT}/", file=sys.stderr)
        return 2
    rows = []
    for path in paths:
        rows += read_csv(path)
    rows = [r for r in rows if _kept(r["case"], args.cases) and _kept(r["mode"], args.modes)]
    text = render(rows, source=", ".join(os.path.basename(p) for p in paths))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
