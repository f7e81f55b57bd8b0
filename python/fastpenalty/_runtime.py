"""Threads and CPU kernel selection of the compiled core."""

from __future__ import annotations

from . import _core


def set_num_threads(n: int) -> None:
    """Threads of fastpenalty's own pool (default: the cores this process may use, or
    FASTPENALTY_NUM_THREADS), at most ``_core.MAX_THREADS``. Values are bit-identical for any
    thread count. An unusable FASTPENALTY_NUM_THREADS or FASTPENALTY_ISA is ignored with a
    RuntimeWarning at import."""
    if isinstance(n, bool) or int(n) != n or not 1 <= n <= _core.MAX_THREADS:
        raise ValueError(f"number of threads must be an integer in [1, {_core.MAX_THREADS}], got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return _core.get_num_threads()


def set_isa(name: str) -> str:
    """Force the CPU kernels of one ISA ("scalar", "avx2", "avx512"); returns the previous one.
    ValueError for an ISA this CPU lacks. FASTPENALTY_ISA caps the choice at import instead."""
    return _core.set_isa(str(name))


def get_isa() -> str:
    return _core.get_isa()


def available_isas() -> list[str]:
    """The ISAs this CPU can run, best first."""
    return list(_core.available_isas())
