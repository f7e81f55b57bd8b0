"""The numpy backend's penalty: fastpenalty's NumPy API on the array behind a Keras weight. The
numpy backend does not differentiate, so a value is all it needs."""

import keras
import numpy as np
from keras import ops

import fastpenalty
from fastpenalty._dtypes import BFLOAT16_DTYPE

_KERNEL_DTYPES = frozenset(np.dtype(d) for d in ("float32", "float64", "float16")) | (
    {BFLOAT16_DTYPE} if BFLOAT16_DTYPE is not None else set()
)


def penalty(x, l1, l2):
    """l1 * sum|x| + l2 * sum x^2 as a 0-d array of x's dtype; None for other dtypes."""
    # A variable's value, or the array itself (convert_to_tensor would cast a float64 array to
    # floatx, where Keras's own regularizers keep its dtype).
    value = x.value if isinstance(x, keras.Variable) else x
    if not isinstance(value, np.ndarray) or value.dtype not in _KERNEL_DTYPES:
        return None
    result = fastpenalty.l1_l2(value, l1=l1, l2=l2)  # a zero factor's term is off
    return ops.convert_to_tensor(result, dtype=value.dtype)
