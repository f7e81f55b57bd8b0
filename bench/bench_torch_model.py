#!/usr/bin/env python
"""Issue 3: a GPT-2-small parameter list in PyTorch, and a Keras 3 step (see bench/README.md).

    python bench/bench_torch_model.py                 # gpt2-small on the CPU, Keras MLP step
    python bench/bench_torch_model.py --quick         # mlp-tiny, small Keras model
    python bench/bench_torch_model.py --device cuda --model bert-base
"""

import sys

from fastpenalty.benchmarks.torch_model import main

if __name__ == "__main__":
    sys.exit(main())
