"""The value a regularizer returns: l1 * sum|x| + l2 * sum x^2.

Under the torch backend the sum runs on fastpenalty's kernels (differentiable, so the
torch trainer's backward pass reaches the weights); elsewhere, and for tensors the
kernels do not take, the same math runs in keras.ops, term for term as Keras writes it.
"""

import keras
from keras import ops

import fastpenalty

_KERNEL_DEVICE_TYPES = ("cpu", "cuda")
_torch = None  # the torch module, bound on the first torch-backend call
_kernel_dtypes = ()


def penalty(x, l1, l2):
    """l1 * sum|x| + l2 * sum x^2 as a scalar of x's dtype; a zero factor's term is left out.

    The result dtype is the one Keras's own regularizers give: x.dtype, which for a Keras
    variable read inside an autocast scope (a layer's call under a mixed policy) is the
    autocast dtype, and otherwise the variable's own. The kernels sum half-precision
    weights in fp32 and round once at the end, so unlike Keras (whose half-precision sum
    can overflow to inf) the result is finite whenever the penalty itself fits the dtype.
    With both factors zero the result is a constant 0, as in Keras's L1L2.
    """
    if not l1 and not l2:
        return ops.convert_to_tensor(0.0, dtype=x.dtype)
    if keras.backend.backend() == "torch":
        result = _kernel_penalty(x, l1, l2)
        if result is not None:
            return result
    return keras_ops_penalty(x, l1, l2)


def keras_ops_penalty(x, l1, l2):
    """The fallback: keras.ops on any backend, the same operations as Keras's L1L2."""
    total = ops.convert_to_tensor(0.0, dtype=x.dtype)
    if l1:
        total = total + ops.cast(l1, dtype=x.dtype) * ops.sum(ops.absolute(x))
    if l2:
        total = total + ops.cast(l2, dtype=x.dtype) * ops.sum(ops.square(x))
    return total


def _kernel_penalty(x, l1, l2):
    """fastpenalty's kernels on the torch tensor behind x; None where they do not apply."""
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
    if l1 and l2:
        result = fastpenalty.l1_l2(value, l1=l1, l2=l2)
    elif l1:
        result = fastpenalty.l1(value, l1)
    else:
        result = fastpenalty.l2(value, l2)
    # The kernels give fp32 (fp64 for fp64 input); Keras hands back x's own dtype.
    return result if result.dtype == out_dtype else result.to(out_dtype)


def _bind_torch():
    global _torch, _kernel_dtypes
    import torch

    _kernel_dtypes = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    _torch = torch
    return torch


_torch_dtypes = {}


def _torch_dtype(dtype):
    found = _torch_dtypes.get(dtype)
    if found is None:
        found = getattr(_torch, keras.backend.standardize_dtype(dtype))
        _torch_dtypes[dtype] = found
    return found
