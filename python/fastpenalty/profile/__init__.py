"""`python -m fastpenalty profile`: see cli.py for the options and the README for a sample."""

from .cli import add_arguments, run

__all__ = ["add_arguments", "run"]
