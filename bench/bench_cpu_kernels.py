#!/usr/bin/env python
"""Issue 2: the CPU kernels against the core bandwidth probes and NumPy (see bench/README.md).

    python bench/bench_cpu_kernels.py                 # 1e8 elements, all dtypes and ISAs
    python bench/bench_cpu_kernels.py --quick         # small smoke run
    python bench/bench_cpu_kernels.py --sizes 1e6,1e7,1e8 --dtypes float32 --isas avx512
"""

import sys

from fastpenalty.benchmarks.cpu_kernels import main

if __name__ == "__main__":
    sys.exit(main())
