"""The torch backend's penalty: fastpenalty's kernels on the torch tensor behind a Keras weight.

A weight Keras's torch trainer regularizes is a CPU or CUDA tensor that requires grad. Through
fastpenalty.torch's custom ops each call pays the dispatcher and autograd-node overhead of a
torch.library op, which on a small weight costs several times the sum itself. In eager mode a
plain CPU tensor therefore takes a direct path instead: a torch.autograd.Function whose forward
and backward are fastpenalty's own calls on the detached tensor (the same kernels, without the
dispatcher). Under torch.compile, a dispatch mode, a functorch transform, on CUDA or for a tensor
subclass, the custom ops run (they carry the fake kernels and autograd formulas those need).
"""

import keras
from keras import ops

import fastpenalty

_KERNEL_DEVICE_TYPES = ("cpu", "cuda")
_torch = None  # the torch module, bound on the first call
_kernel_dtypes = ()
_plain_types = ()
_eager = None
_torch_dtypes = {}
_Direct = None


def penalty(x, l1, l2):
    """l1 * sum|x| + l2 * sum x^2 as a 0-d tensor of x's (Keras) dtype; None where the kernels
    do not take x (another device or dtype)."""
    torch = _torch or _bind_torch()
    if isinstance(x, torch.Tensor):
        value, out_dtype = x, x.dtype
    else:
        # A Keras variable's value is its torch Parameter, or under an autocast scope a
        # differentiable cast of it; its dtype then reads as the autocast dtype.
        value = x.value if isinstance(x, keras.Variable) else ops.convert_to_tensor(x)
        out_dtype = _torch_dtype(x.dtype)
    if value.dtype not in _kernel_dtypes or value.device.type not in _KERNEL_DEVICE_TYPES:
        return None
    if type(value) in _plain_types and value.device.type == "cpu" and _eager():
        result = _Direct.apply(value, l1, l2)
    else:
        result = fastpenalty.l1_l2(value, l1=l1, l2=l2)  # a zero factor's term is off
    # The kernels give fp32 (fp64 for fp64 input); Keras hands back x's own dtype.
    return result if result.dtype == out_dtype else result.to(out_dtype)


def _bind_torch():
    global _torch, _kernel_dtypes, _plain_types, _eager, _Direct
    import torch

    from fastpenalty.torch import _plan

    _kernel_dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    _plain_types = (torch.Tensor, torch.nn.Parameter)
    # fastpenalty.torch's one test for "nothing would have to see this call" (its eager fast
    # paths use the same): no tracing, mode or functorch transform.
    _eager = _plan.eager

    class Direct(torch.autograd.Function):
        """value = fastpenalty.l1_l2(w); dw = ct * fastpenalty.grad(w): the kernels, on the
        detached tensor, recorded as one autograd node."""

        @staticmethod
        def forward(ctx, w, l1, l2):
            ctx.save_for_backward(w)
            ctx.factors = (l1, l2)
            return fastpenalty.l1_l2(w.detach(), l1=l1, l2=l2)

        @staticmethod
        def backward(ctx, ct):
            (w,) = ctx.saved_tensors
            if not ctx.needs_input_grad[0]:
                return None, None, None
            l1, l2 = ctx.factors
            g = fastpenalty.grad(w.detach(), l1=l1, l2=l2)
            return g.mul_(ct.to(g.dtype)), None, None

    _Direct = Direct
    _torch = torch
    return torch


def _torch_dtype(dtype):
    found = _torch_dtypes.get(dtype)
    if found is None:
        found = getattr(_torch, keras.backend.standardize_dtype(dtype))
        _torch_dtypes[dtype] = found
    return found
