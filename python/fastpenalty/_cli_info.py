"""`python -m fastpenalty info`"""

from __future__ import annotations

import json

from ._info import format_info, info


def add_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args) -> int:
    facts = info()
    print(json.dumps(facts, indent=2) if args.json else format_info(facts))
    return 0
