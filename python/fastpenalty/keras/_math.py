"""The value a regularizer returns: l1 * sum|x| + l2 * sum x^2.

On the torch, jax and numpy backends the sum runs on fastpenalty's kernels (differentiable on
torch and jax, so the trainers' gradients reach the weights); on any other backend, and for a
tensor the kernels do not take (device, platform or dtype), the same math runs in keras.ops.
"""

import keras
from keras import ops

_HALF = ("float16", "bfloat16")
_kernel_paths = {}


def penalty(x, l1, l2):
    """l1 * sum|x| + l2 * sum x^2 as a scalar of x's dtype; a zero factor's term is left out.

    The result dtype is the one Keras's own regularizers give: x.dtype, which for a Keras
    variable read inside an autocast scope (a layer's call under a mixed policy) is the
    autocast dtype, and otherwise the variable's own. Half-precision weights are summed in
    fp32 and rounded once at the end, so unlike Keras (whose half-precision sum can overflow
    to inf) the result is finite whenever the penalty itself fits the dtype.
    With both factors zero the result is a constant 0, as in Keras's L1L2.
    """
    if not l1 and not l2:
        return ops.convert_to_tensor(0.0, dtype=x.dtype)
    kernels = _kernel_paths.get(keras.backend.backend()) or _bind(keras.backend.backend())
    result = kernels(x, l1, l2)
    return keras_ops_penalty(x, l1, l2) if result is None else result


def keras_ops_penalty(x, l1, l2):
    """The fallback: keras.ops on any backend, the same operations as Keras's L1L2, except that
    half-precision weights are summed in fp32 (then rounded to their dtype)."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype in _HALF:
        return ops.cast(keras_ops_penalty(ops.cast(x, "float32"), l1, l2), dtype)
    total = ops.convert_to_tensor(0.0, dtype=x.dtype)
    if l1:
        total = total + ops.cast(l1, dtype=x.dtype) * ops.sum(ops.absolute(x))
    if l2:
        total = total + ops.cast(l2, dtype=x.dtype) * ops.sum(ops.square(x))
    return total


def _NONE(x, l1, l2):  # a backend without a kernel path
    return None


def _bind(backend):
    if backend == "torch":
        from ._torch_kernels import penalty as kernels
    elif backend == "jax":
        from ._jax_kernels import penalty as kernels
    elif backend == "numpy":
        from ._numpy_kernels import penalty as kernels
    else:
        kernels = _NONE
    _kernel_paths[backend] = kernels
    return kernels
