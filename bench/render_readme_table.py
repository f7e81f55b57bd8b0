#!/usr/bin/env python
"""The README's performance section (markdown) from a benchmark CSV.

    python bench/render_readme_table.py bench/results/bench-YYYYMMDDTHHMMSS.csv > perf.md
    python bench/render_readme_table.py            # the newest CSV under bench/results/
"""

import sys

from fastpenalty.benchmarks.render import main

if __name__ == "__main__":
    sys.exit(main())
