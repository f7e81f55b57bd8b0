"""NumPy arrays: fastpenalty against the NumPy code a user would write, and the core probes.

Two NumPy peers: ``numpy`` is the plain expression (``g += l1*np.sign(w) + 2*l2*w``, value
``l1*np.abs(w).sum() + l2*(w*w).sum()``), whose temporaries are allocated on every call;
``numpy[out=]`` is the careful version with one pre-allocated scratch array per weight.
"""

from __future__ import annotations

import numpy as np

from . import probes
from .buffers import ITEMSIZE, VALUE_RTOL, filled_like, flat_probe_arrays, probe_dtype_for
from .harness import Candidate, Group


def _dtype_of(ws) -> str:
    names = {str(w.dtype) for w in ws}
    return names.pop() if len(names) == 1 else "mixed"


def _probe_buffers(ws, gs, dtype: str):
    """The weights themselves when they are one float32/float64 array, else flat buffers
    with the same byte count."""
    if len(ws) == 1 and dtype in ("float32", "float64"):
        return ws[0], gs[0]
    n_bytes = sum(w.nbytes for w in ws)
    return flat_probe_arrays(n_bytes, probe_dtype_for([dtype]))


def _fastpenalty(ws, gs, l1, l2):
    import fastpenalty as fp

    if len(ws) == 1:
        w, g = ws[0], gs[0]
        return (Candidate("fastpenalty", lambda: fp.accumulate_(w, g, l1, l2)),
                Candidate("fastpenalty", lambda: fp.l1_l2(w, l1, l2)))
    return (Candidate("fastpenalty", lambda: fp.accumulate_many_(ws, gs, l1, l2)),
            Candidate("fastpenalty", lambda: fp.value_many(ws, l1, l2)))


def _numpy_plain(ws, gs, l1, l2):
    def accumulate():
        total = 0.0
        for w, g in zip(ws, gs):
            g += l1 * np.sign(w) + 2 * l2 * w
            total += float(l1 * np.abs(w).sum() + l2 * (w * w).sum())
        return total

    def value():
        return sum(float(l1 * np.abs(w).sum() + l2 * (w * w).sum()) for w in ws)

    return Candidate("numpy", accumulate), Candidate("numpy", value)


def _squares_sum(w, scratch):
    if w.dtype in (np.float32, np.float64):
        return float(np.vdot(w, w))  # BLAS: one read of w
    np.multiply(w, w, out=scratch)
    return float(scratch.sum())


def _numpy_out(ws, gs, scratch, l1, l2):
    def value_of(w, s):
        np.abs(w, out=s)
        return l1 * float(s.sum()) + l2 * _squares_sum(w, s)

    def accumulate():
        total = 0.0
        for w, g, s in zip(ws, gs, scratch):
            total += value_of(w, s)
            np.sign(w, out=s)
            s *= l1
            g += s
            np.multiply(w, 2 * l2, out=s)
            g += s
        return total

    def value():
        return sum(value_of(w, s) for w, s in zip(ws, scratch))

    return Candidate("numpy", accumulate, variant="out="), Candidate("numpy", value, variant="out=")


def numpy_groups(case: str, ws: list, l1: float, l2: float, *, isa: str, threads: int,
                 peers: bool = True, probe: str = "core") -> list:
    """[accumulate group, value group] over the arrays ``ws`` (gradients made here), against the
    core's probes or (probe='torch') torch's over the same bytes (probes.numpy_pair)."""
    dtype = _dtype_of(ws)
    gs = [filled_like(w) for w in ws]
    n = sum(w.size for w in ws)
    itemsize = ITEMSIZE[dtype]
    pw, pg = _probe_buffers(ws, gs, dtype)

    fp_acc, fp_val = _fastpenalty(ws, gs, l1, l2)
    acc, val = [fp_acc], [fp_val]
    if peers:
        scratch = [filled_like(w) for w in ws]
        for a, v in (_numpy_plain(ws, gs, l1, l2), _numpy_out(ws, gs, scratch, l1, l2)):
            acc.append(a)
            val.append(v)

    common = dict(case=case, api="numpy", n_elements=n, n_tensors=len(ws), dtype=dtype, isa=isa, threads=threads,
                  value_rtol=VALUE_RTOL.get(dtype))
    return [
        Group(mode="accumulate", bytes_per_call=3 * itemsize * n, candidates=acc,
              probe=probes.numpy_pair(probe, pw, pg), **common),
        Group(mode="value", bytes_per_call=itemsize * n, candidates=val,
              probe=probes.numpy_pair(probe, pw), **common),
    ]
