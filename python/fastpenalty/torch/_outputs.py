"""What the ops return, shared by the real and the fake kernels so traced outputs match."""
import torch

from ._layout import is_dense


def value_dtype(dtypes) -> torch.dtype:
    """fp64 when every input is fp64, else fp32 (half precision never overflows the value)."""
    fp64 = bool(dtypes) and all(d == torch.float64 for d in dtypes)
    return torch.float64 if fp64 else torch.float32


def grad_buffer(w: torch.Tensor) -> torch.Tensor:
    """The output of grad(w): w's strides when w is dense (empty_like keeps them), else
    contiguous."""
    if is_dense(w):
        return torch.empty_like(w)
    return torch.empty(w.shape, dtype=w.dtype, device=w.device)
