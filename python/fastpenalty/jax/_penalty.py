"""The JAX functions: penalty values with a custom VJP, and the fused value-and-gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .._factors import check_factor_list
from . import _ffi

_SUPPORTED = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), np.dtype(jnp.bfloat16)}


def _leaves(ws, names=None):
    """The weights as JAX arrays of a supported dtype, and the tree they came in."""
    leaves, tree = jax.tree.flatten(ws)
    arrays = [jnp.asarray(w) for w in leaves]
    for i, a in enumerate(arrays):
        if a.dtype not in _SUPPORTED:
            name = names[i] if names else f"ws[{i}]"
            raise TypeError(f"{name} has dtype {a.dtype}; fastpenalty supports float32, float64, float16 and bfloat16")
    return arrays, tree


def _factor_dtype():
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def _factor_array(f, name: str, count: int, tree):
    """One factor or one per tensor, as a 1-D array. Numbers are checked here; traced values are
    checked by the C ABI when the computation runs (an error then names the bad factor)."""
    dtype = _factor_dtype()
    if tree is not None and tree.num_leaves > 1 and jax.tree.structure(f) == tree:
        f = jax.tree.leaves(f)  # one factor per weight, in the weights' own tree
    if isinstance(f, (list, tuple)) and any(isinstance(x, jax.core.Tracer) for x in f):
        arr = jnp.stack([jnp.asarray(x, dtype) for x in f])
        if arr.shape != (count,):
            raise ValueError(f"{name} has {arr.shape[0]} entries for {count} tensors")
        return arr
    if isinstance(f, jax.core.Tracer):
        arr = jnp.reshape(jnp.asarray(f, dtype), (-1,))
        if arr.shape[0] not in (1, count):
            raise ValueError(f"{name} has {arr.shape[0]} entries for {count} tensors")
        return arr
    values = np.asarray(f)
    values = check_factor_list(values.reshape(-1).tolist() if values.ndim else values, name, count)
    return jnp.asarray(values, dtype)


def _pair(l1s, l2s, count: int):
    """l1s and l2s of one length, as the handlers expect."""
    if l1s.shape != l2s.shape:
        l1s, l2s = jnp.broadcast_to(l1s, (count,)), jnp.broadcast_to(l2s, (count,))
    return l1s, l2s


@jax.custom_vjp
def _penalty(ws, l1s, l2s):
    return _ffi.value_many(ws, l1s, l2s)


def _penalty_fwd(ws, l1s, l2s):
    w = tuple(p.value for p in ws)
    # What is differentiated is known at trace time. Residuals may hold only arrays, so each flag
    # travels as the residual's tree structure: () for yes, None for no.
    flags = (tuple(() if p.perturbed else None for p in ws), () if l1s.perturbed else None,
             () if l2s.perturbed else None)
    return _ffi.value_many(w, l1s.value, l2s.value), (w, l1s.value, l2s.value, flags)


def _factor_cotangent(ct, sums, factors):
    d = ct * sums
    return (jnp.sum(d, keepdims=True) if factors.shape[0] == 1 else d).astype(factors.dtype)


def _penalty_bwd(res, ct):
    w, l1s, l2s, (w_flags, l1_flag, l2_flag) = res
    if isinstance(ct, SymbolicZero):
        return (tuple(None for _ in w), None, None)
    wanted = [i for i, f in enumerate(w_flags) if f is not None]
    dw = [None] * len(w)
    if wanted:
        # ct is folded into the factors inside the handler: one pass writes ct * grad(w).
        sel = [w[i] for i in wanted]
        n = len(w)
        a = l1s if l1s.shape[0] == 1 else l1s[jnp.asarray(wanted)] if len(wanted) < n else l1s
        b = l2s if l2s.shape[0] == 1 else l2s[jnp.asarray(wanted)] if len(wanted) < n else l2s
        for i, g in zip(wanted, _ffi.grad_many(sel, a, b, ct)):
            dw[i] = g
    d1 = d2 = None
    if l1_flag is not None or l2_flag is not None:
        s = _ffi.sums(w, ct.dtype)
        d1 = _factor_cotangent(ct, s[:, 0], l1s) if l1_flag is not None else None
        d2 = _factor_cotangent(ct, s[:, 1], l2s) if l2_flag is not None else None
    return (tuple(dw), d1, d2)


_penalty.defvjp(_penalty_fwd, _penalty_bwd, symbolic_zeros=True)


def _value(arrays, l1, l2, tree=None, names=("l1", "l2")):
    if not arrays:
        return jnp.zeros((), jnp.float32)
    n = len(arrays)
    l1s, l2s = _pair(_factor_array(l1, names[0], n, tree), _factor_array(l2, names[1], n, tree), n)
    return _penalty(tuple(arrays), l1s, l2s)


def l1(w, factor=0.01):
    """factor * sum(|w|) as a 0-d array (float32, or float64 for float64 w); differentiable."""
    arrays, _ = _leaves([w], ["w"])
    return _value(arrays, factor, 0.0, names=("factor", "l2"))


def l2(w, factor=0.01):
    """factor * sum(w**2); optax/PyTorch weight_decay=wd corresponds to factor = wd / 2."""
    arrays, _ = _leaves([w], ["w"])
    return _value(arrays, 0.0, factor, names=("l1", "factor"))


def l1_l2(w, l1=0.01, l2=0.01):
    """l1 * sum(|w|) + l2 * sum(w**2), in one pass over w; differentiable."""
    arrays, _ = _leaves([w], ["w"])
    return _value(arrays, l1, l2)


def value_many(ws, l1=0.0, l2=0.0):
    """The total penalty over a pytree of weights in one call; differentiable, and its gradient is
    one fused call too. l1/l2: one factor, or one per weight (a sequence in leaf order, or a tree
    shaped like ws)."""
    arrays, tree = _leaves(ws)
    return _value(arrays, l1, l2, tree)


def value_and_grad_many(ws, l1=0.0, l2=0.0, *, add_to=None):
    """(value, grads): the total penalty over a pytree of weights and its gradient, a tree shaped
    like ws. With add_to (a tree shaped like ws, e.g. the loss gradients), the penalty gradient is
    added into it in one pass per tensor, in place where XLA can reuse add_to's buffers (donated
    or dead after the call, as inside a jitted train step). Not itself differentiable."""
    arrays, tree = _leaves(ws)
    n = len(arrays)
    if n == 0:
        return jnp.zeros((), jnp.float32), ws if add_to is None else add_to
    l1s, l2s = _pair(_factor_array(l1, "l1", n, tree), _factor_array(l2, "l2", n, tree), n)
    if add_to is None:
        value = _ffi.value_many(arrays, l1s, l2s)
        one = jnp.ones((), value.dtype)
        return value, jax.tree.unflatten(tree, _ffi.grad_many(arrays, l1s, l2s, one))
    g_leaves, g_tree = jax.tree.flatten(add_to)
    if g_tree != tree:
        raise ValueError(f"add_to has the tree structure {g_tree}, ws has {tree}")
    gs = [jnp.asarray(g) for g in g_leaves]
    for i, (w, g) in enumerate(zip(arrays, gs)):
        if g.shape != w.shape or g.dtype != w.dtype:
            raise ValueError(f"add_to leaf {i} is {g.dtype}{list(g.shape)} but its weight is {w.dtype}{list(w.shape)}")
    value, out = _ffi.accumulate_many(arrays, gs, l1s, l2s)
    return value, jax.tree.unflatten(tree, out)
