"""Bandwidth probes: the simplest loop with the same memory traffic as the measured work.

CPU: the core's own ``probe_add`` (g += w) and ``probe_sum`` (read-only sum), which run on
the same thread pool and threads as the penalty kernels; or (``--probe torch`` of the kernel
benches) torch's ``add_`` / ``sum`` over the same NumPy buffers, so that every measured call
starts right after a torch op, as it does in a training step. Device tensors: torch's own
``_foreach_add_`` / ``add_`` / ``sum``. Probes return None, so their results are never
compared with penalty values.
"""

from __future__ import annotations

from .. import _dtypes
from .harness import PROBE, Candidate

_CORE_CODES = {name: _dtypes.CODES[name] for name in ("float32", "float64")}  # what the probes take


def _pointer(x) -> int:
    return x.data_ptr() if hasattr(x, "data_ptr") else x.ctypes.data


def _size(x) -> int:
    return x.numel() if hasattr(x, "numel") else x.size


def _code(x) -> int:
    name = str(x.dtype).replace("torch.", "")
    try:
        return _CORE_CODES[name]
    except KeyError:
        raise ValueError(f"the core probes take float32 or float64 buffers, not {name}") from None


def core_add(w, g) -> Candidate:
    from fastpenalty import _core

    w_ptr, g_ptr, n, code = _pointer(w), _pointer(g), _size(w), _code(w)
    if _size(g) != n:
        raise ValueError("probe buffers differ in size")

    def run(_keep_alive=(w, g)):  # the raw pointers are only valid while w and g live
        _core.probe_add(w_ptr, g_ptr, n, code)

    return Candidate(PROBE, run, compare=False, variant="core g+=w")


def core_sum(w) -> Candidate:
    from fastpenalty import _core

    w_ptr, n, code = _pointer(w), _size(w), _code(w)

    def run(_keep_alive=w):
        _core.probe_sum(w_ptr, n, code)

    return Candidate(PROBE, run, compare=False, variant="core sum(w)")


def torch_foreach_add(grads, params) -> Candidate:
    import torch

    def run():
        with torch.no_grad():
            torch._foreach_add_(grads, params)

    return Candidate(PROBE, run, compare=False, variant="torch._foreach_add_")


def torch_add(w, g) -> Candidate:
    import torch

    def run():
        with torch.no_grad():
            g.add_(w)

    return Candidate(PROBE, run, compare=False, variant="torch add_ flat")


def torch_sum(w) -> Candidate:
    import torch

    def run():
        with torch.no_grad():
            torch.sum(w)

    return Candidate(PROBE, run, compare=False, variant="torch sum flat")


def numpy_pair(kind: str, w, g=None) -> Candidate:
    """The probe of NumPy buffers w (and g: the g += w probe, else the read-only sum): the
    core's (kind 'core') or torch's over the same memory (kind 'torch')."""
    if kind == "core":
        return core_add(w, g) if g is not None else core_sum(w)
    if kind != "torch":
        raise ValueError(f"unknown probe kind {kind!r} (core or torch)")
    import torch

    tw = torch.from_numpy(w)
    return torch_add(tw, torch.from_numpy(g)) if g is not None else torch_sum(tw)
