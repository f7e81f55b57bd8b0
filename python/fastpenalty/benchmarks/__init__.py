"""Benchmark harness behind ``python -m fastpenalty bench`` and the scripts in ``bench/``.

Every measured call is timed interleaved with a bandwidth probe of the same access
pattern (probe, candidate, probe, candidate, ..., probe), so results are reported as
ratios that survive the memory bandwidth drifting during a run.
"""
