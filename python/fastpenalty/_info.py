"""Build and runtime facts, for `fastpenalty.info()` and `python -m fastpenalty info`."""

from __future__ import annotations

import platform

from . import _core, __version__


def _cuda_facts() -> dict:
    try:
        from . import _cuda
    except ImportError as exc:
        if getattr(exc, "name", None) == "fastpenalty._cuda" or "cannot import name '_cuda'" in str(exc):
            reason = "not built (no CUDA compiler when the package was built)"
        else:
            reason = f"built but failed to import: {str(exc).splitlines()[0]}"
        return {"cuda_built": False, "cuda_available": False, "cuda_note": reason}
    facts = {"cuda_built": True, "cuda_available": bool(_cuda.available())}
    for key in ("device_count", "runtime_version", "driver_version"):
        fn = getattr(_cuda, key, None)
        if fn is not None:
            try:
                facts[f"cuda_{key}"] = fn()
            except Exception as exc:  # a missing driver is a fact to report, not an error
                facts[f"cuda_{key}"] = f"unavailable ({exc})"
    return facts


def info() -> dict:
    facts = {
        "version": __version__,
        "abi_version": _core.ABI_VERSION,
        "library_version": _core.VERSION,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_kernel": _core.get_isa(),
        "cpu_best_kernel": _core.best_isa(),
        "cpu_available_kernels": list(_core.available_isas()),
        "threads": _core.get_num_threads(),
        "chunk_elements": _core.CHUNK,
    }
    if _core.config_warning():  # an unusable FASTPENALTY_NUM_THREADS / FASTPENALTY_ISA, ignored
        facts["config_warning"] = _core.config_warning()
    facts.update(_cuda_facts())
    return facts


def format_info(facts: dict) -> str:
    width = max(len(k) for k in facts)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in facts.items())
