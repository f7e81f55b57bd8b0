#!/usr/bin/env python
"""Builds of libfastpenalty timed against each other in one process (see its --help).

    python bench/ab_libraries.py before=/tmp/a/libfastpenalty.so.1 after=/tmp/b/libfastpenalty.so.1 --dtype bfloat16
"""

import sys

from fastpenalty.benchmarks.ab_libraries import main

if __name__ == "__main__":
    sys.exit(main())
