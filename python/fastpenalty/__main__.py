"""python -m fastpenalty {info,profile,bench}"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module with add_arguments(parser) and run(args) -> int, help)
_COMMANDS = {
    "info": ("fastpenalty._cli_info", "build and runtime facts: version, CPU kernel, threads, CUDA"),
    "profile": ("fastpenalty.profile.cli", "per-layer weight statistics and penalty share of a model"),
    "bench": ("fastpenalty.benchmarks.cli", "side-by-side timings against NumPy, torch and Keras"),
}


def main(argv=None) -> int:
    """Entry point of `python -m fastpenalty` and of the `fastpenalty` script."""
    parser = argparse.ArgumentParser(prog="python -m fastpenalty", description=__doc__)
    parser.add_argument("--cmake-dir", action="store_true",
                        help="print the directory of fastpenaltyConfig.cmake (for find_package) and exit")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(_COMMANDS) + "}")
    modules = {}
    for name, (module_name, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            p.set_defaults(_unavailable=f"{name} is unavailable: {exc}")
            continue
        module.add_arguments(p)
        modules[name] = module
    args = parser.parse_args(argv)
    if args.cmake_dir:
        from ._cmake import cmake_dir

        print(cmake_dir())
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_unavailable", None):
        print(f"fastpenalty: {args._unavailable}", file=sys.stderr)
        return 1
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
