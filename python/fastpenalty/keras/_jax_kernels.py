"""The jax backend's penalty: fastpenalty.jax's XLA FFI calls on the jax array behind a Keras
weight. They trace under jax.jit (Keras's jitted train step) and differentiate through
fastpenalty.jax's custom VJP (one fused pass writes the gradient); fp16/bf16 weights are summed
in fp32. Where fastpenalty.jax cannot run (the package was built without its FFI handlers, or the
computation is placed on a platform the handlers were not built for) this returns None and the
caller falls back to keras.ops."""

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops

_KERNEL_DTYPES = frozenset(np.dtype(d) for d in (np.float32, np.float64, np.float16, jnp.bfloat16))
_fj = None
_unavailable = False


def penalty(x, l1, l2):
    """l1 * sum|x| + l2 * sum x^2 as a 0-d array of x's dtype, or None (see the module doc)."""
    fj = _fj or _bind()
    if fj is None:
        return None
    # A variable's value (traced inside Keras's jitted steps; autocast under a mixed policy), or
    # the array itself.
    value = x.value if isinstance(x, keras.Variable) else x
    if not isinstance(value, jax.Array):
        value = ops.convert_to_tensor(value)
    if value.dtype not in _KERNEL_DTYPES or _platform(value) not in fj.PLATFORMS:
        return None
    return _jitted_penalty(value, l1, l2)


@jax.jit
def _jitted_penalty(w, l1, l2):
    # Jitted so that an eager call (model.losses outside a train step) runs one cached
    # executable instead of tracing the custom VJP again; inside Keras's jitted step it is
    # inlined. The factors are traced operands: new values do not recompile, and a zero
    # factor switches its term off in the kernel.
    result = _fj.l1_l2(w, l1=l1, l2=l2)
    return result if result.dtype == w.dtype else result.astype(w.dtype)


def _platform(value):
    devices = getattr(value, "devices", None)
    if devices is not None and not isinstance(value, jax.core.Tracer):
        return next(iter(devices())).platform
    return jax.default_backend()  # a traced value runs where the jitted computation is placed


def _bind():
    global _fj, _unavailable
    if _unavailable:
        return None
    try:
        import fastpenalty.jax as fj
    except ImportError:  # built without the FFI handlers
        _unavailable = True
        return None
    _fj = fj
    return fj
