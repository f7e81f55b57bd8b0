"""fastpenalty for JAX: the fused kernels as XLA FFI calls, usable under jax.jit, jax.grad and
jax.vmap (registered with jax.ffi for the CPU; CUDA targets appear when the handlers are built
for it).

    l1(w, factor=0.01), l2(w, factor=0.01), l1_l2(w, l1=0.01, l2=0.01)
        -> 0-d array (float32; float64 for float64 weights), differentiable: a custom VJP writes
           ct * grad(w) in one pass, so jax.grad of a loss that includes the penalty is exact
    value_many(ws, l1=0.0, l2=0.0)
        -> the total over a pytree of weights in one call, differentiable the same way
    value_and_grad_many(ws, l1=0.0, l2=0.0, *, add_to=None)
        -> (value, grads shaped like ws); with add_to=grads the penalty gradient is added into
           them, in place where XLA can (inside a jitted train step)

Factors are traced operands: changing them between calls of a jitted function does not
recompile. Numbers are checked at once (ValueError); a traced factor that is negative or not
finite fails when the computation runs. The math is the Keras convention:
l1 * sum|w| + l2 * sum w^2, gradient l1 * sign(w) + 2 * l2 * w; optax.add_decayed_weights(wd)
(and PyTorch's weight_decay=wd) corresponds to l2 = wd / 2.

Needs the package built with its FFI handlers: FASTPENALTY_JAX=1 pip install 'fastpenalty[jax]'.
"""

from __future__ import annotations

try:
    import jax as _jax  # noqa: F401  the real jax (absolute import), checked before anything else
except ImportError as exc:  # pragma: no cover - exercised only without jax
    raise ImportError("fastpenalty.jax needs jax: pip install 'fastpenalty[jax]'") from exc

from ._ffi import PLATFORMS, XLA_FFI_VERSION, library_path
from ._penalty import l1, l1_l2, l2, value_and_grad_many, value_many

__all__ = ["l1", "l2", "l1_l2", "value_many", "value_and_grad_many", "PLATFORMS", "XLA_FFI_VERSION",
           "library_path"]
