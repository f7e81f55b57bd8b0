"""CUDA tensors: handed to fastpenalty._cuda_ops (the CUDA kernels, DESIGN.md).

Factors arrive as float64 tensors on the device and nothing here reads a device value back, so
no call waits for the GPU (check_finite=True is the exception: it has to look). The kernels take
contiguous tensors; others go through a contiguous staging copy on the device.
"""
import torch

from ._checks import NOT_FINITE
from ._layout import is_dense, readable, staged_target
from ._outputs import grad_buffer, value_dtype


def kernels():
    """fastpenalty._cuda_ops, or a RuntimeError that says why CUDA tensors cannot be served."""
    try:
        from .. import _cuda_ops
    except ImportError as e:
        raise RuntimeError(
            "fastpenalty got CUDA tensors, but its CUDA kernels are not available in this "
            f"installation ({e}); move the tensors to the CPU or install fastpenalty built with "
            "CUDA (see `python -m fastpenalty info`)") from e
    if not _cuda_ops.is_available():
        raise RuntimeError(
            "fastpenalty got CUDA tensors, but its CUDA kernels are not available: "
            f"{_cuda_ops.unavailable_reason()}; move the tensors to the CPU or install fastpenalty "
            "built with CUDA (see `python -m fastpenalty info`)")
    return _cuda_ops


def _contiguous(ts) -> list:
    """The tensors as the kernels read them: contiguous, negative-bit views resolved."""
    return [t if t.is_contiguous() and not t.is_neg() else readable(t).contiguous() for t in ts]


def _staged(gs) -> list:
    """gs itself when every g can be written as it is (no copy-back walk then), else a list with
    contiguous copies in place of the others."""
    if all(g.is_contiguous() and not g.is_neg() for g in gs):
        return gs
    return [g if g.is_contiguous() and not g.is_neg() else staged_target(g) for g in gs]


def _in_promised_layout(w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The kernels write contiguous outputs; the fake kernel promised grad_buffer(w)'s strides."""
    if w.is_contiguous() or not is_dense(w):
        return out
    return grad_buffer(w).copy_(out)


def require_finite(ws, names) -> None:
    flags = [torch.isfinite(w).all() for w in ws if w.numel()]
    if not flags or bool(torch.stack(flags).all()):  # the one synchronization it costs
        return
    for w, name in zip(ws, names):
        if w.numel() and not bool(torch.isfinite(w).all()):
            raise ValueError(f"{name} contains NaN or Inf (check_finite=True)")


def value_many(ws, l1s, l2s, check_finite: bool, names) -> torch.Tensor:
    if check_finite:
        require_finite(ws, names)
    total = kernels().value_many(_contiguous(ws), l1s.reshape(-1), l2s.reshape(-1))
    total = total.to(value_dtype([w.dtype for w in ws]))
    if check_finite and not bool(torch.isfinite(total)):  # a second synchronization
        raise ValueError(NOT_FINITE)
    return total


def grad(w, l1, l2, scale) -> torch.Tensor:
    """scale * grad(w); the scale (autograd's incoming gradient) multiplies afterwards, so any
    sign, NaN or Inf of it propagates."""
    out = kernels().grad(_contiguous([w])[0], l1.reshape(()), l2.reshape(()))
    out = _in_promised_layout(w, out)
    return out if scale is None else out.mul_(scale)


def grad_many(ws, l1s, l2s, scale) -> list:
    outs = kernels().grad_many(_contiguous(ws), l1s.reshape(-1), l2s.reshape(-1))
    outs = [_in_promised_layout(w, out) for w, out in zip(ws, outs)]
    if outs:
        torch._foreach_mul_(outs, scale)
    return outs


def accumulate_many(ws, gs, l1s, l2s, check_finite: bool, names) -> torch.Tensor:
    if check_finite:  # a read pass first: nothing is written when the value is not finite
        value_many(ws, l1s, l2s, True, names)
    staged = _staged(gs)
    total = kernels().accumulate_many_(_contiguous(ws), staged, l1s.reshape(-1), l2s.reshape(-1))
    if staged is not gs:
        for g, gc in zip(gs, staged):
            if gc is not g:
                g.copy_(gc)
    return total
