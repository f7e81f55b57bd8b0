"""fastpenalty.jax: values and gradients (jax.grad through the custom VJP, and the fused
value_and_grad_many) against the NumPy oracle, under jit and vmap, on the CPU."""
import os

import numpy as np
import pytest
from _tolerances import FLOAT_DTYPES, DTYPE_IDS, assert_elements_close, assert_value_close, value_rtol

import fastpenalty
from fastpenalty import _core, reference

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

try:
    import fastpenalty.jax as fj
except ImportError as exc:
    # A build asked for the handlers (FASTPENALTY_JAX=1) must have them: fail instead of skipping.
    if os.environ.get("FASTPENALTY_JAX", "").lower() in ("1", "on", "true", "yes"):
        raise
    pytest.skip(f"fastpenalty.jax is unavailable: {exc}", allow_module_level=True)

SIZES = (0, 1, 7, 33, 2 * _core.CHUNK + 3)


def _x64():
    """Context manager that enables float64 arrays (its home moved between jax versions)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64

    return enable_x64()


def _jax_array(w):
    return jnp.asarray(w)


@pytest.fixture(params=FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
def dtype(request):
    """Every dtype; float64 with JAX's 64-bit mode on for the test."""
    if request.param == np.float64:
        with _x64():
            yield request.param
    else:
        yield request.param


@pytest.mark.parametrize("n", SIZES)
def test_values_match_reference(weights, dtype, n):
    w = weights((n,), dtype)
    jw = _jax_array(w)
    rtol = value_rtol([dtype])
    for got, want in (
        (fj.l1(jw, 0.3), reference.l1(w, 0.3)),
        (fj.l2(jw, 0.7), reference.l2(w, 0.7)),
        (fj.l1_l2(jw, 0.3, 0.7), reference.l1_l2(w, 0.3, 0.7)),
        (jax.jit(fj.l1_l2)(jw, 0.3, 0.7), reference.l1_l2(w, 0.3, 0.7)),
    ):
        assert got.shape == ()
        assert got.dtype == (np.float64 if dtype == np.float64 else np.float32)
        assert_value_close(got, want, rtol)


def test_matches_numpy_api_bit_for_bit(weights):
    """The JAX path calls the same C ABI: the same float32 value as fastpenalty.l1_l2 on NumPy."""
    w = weights((3 * _core.CHUNK + 11,), np.float32)
    assert float(fj.l1_l2(jnp.asarray(w), 0.25, 0.5)) == fastpenalty.l1_l2(w, 0.25, 0.5)


@pytest.mark.parametrize("scale", [1.0, 3.0, -2.0])
def test_jax_grad_through_penalty(weights, dtype, scale):
    """jax.grad of a loss that includes the penalty: the task term plus scale * grad(w)."""
    w = weights((5, 2 * _core.CHUNK // 5 + 3), dtype)
    x = weights(w.shape, dtype)
    l1, l2 = 0.25, 0.125

    def loss(p):
        task = jnp.sum(p.astype(jnp.float32) * jnp.asarray(x, jnp.float32))
        return task + scale * fj.l1_l2(p, l1, l2)

    for fn in (jax.grad(loss), jax.jit(jax.grad(loss))):
        g = np.asarray(fn(_jax_array(w)))
        penalty = reference.grad(w, l1, l2).astype(np.float64) * scale
        expected = (x.astype(np.float32).astype(np.float64) + penalty).astype(dtype)
        scale_of_terms = np.abs(x.astype(np.float64)) + np.abs(penalty)
        assert_elements_close(g, expected, dtype, scale=scale_of_terms * 2)


def test_grad_with_respect_to_factors(weights):
    w = weights((1000,), np.float32)
    jw = jnp.asarray(w)
    d1, d2 = jax.grad(lambda a, b: 2.0 * fj.l1_l2(jw, a, b), argnums=(0, 1))(0.5, 0.25)
    x = w.astype(np.float64)
    assert_value_close(d1, 2.0 * np.abs(x).sum(), 2e-6)
    assert_value_close(d2, 2.0 * np.square(x).sum(), 2e-6)


def test_changing_factors_does_not_retrace(weights):
    traces = []

    @jax.jit
    def step(w, l1, l2):
        traces.append(1)
        return fj.l1_l2(w, l1, l2)

    w = weights((100,), np.float32)
    for l1 in (0.1, 0.2, 0.3):
        assert_value_close(step(jnp.asarray(w), l1, 0.05), reference.l1_l2(w, l1, 0.05), 2e-6)
    assert len(traces) == 1


def test_vmap_gives_one_value_per_row(weights):
    w = weights((4, 50), np.float32)
    got = np.asarray(jax.vmap(lambda r: fj.l1_l2(r, 0.1, 0.2))(jnp.asarray(w)))
    want = [reference.l1_l2(row, 0.1, 0.2) for row in w]
    for g, e in zip(got, want):
        assert_value_close(g, e, 2e-6)


def _tree(weights):
    """A small mixed-dtype parameter tree (dict of arrays)."""
    return {
        "embed": weights((300, 7), np.float32),
        "dense": {"kernel": weights((2 * _core.CHUNK + 1,), np.float32),
                  "bias": weights((5,), np.float16)},
        "norm": weights((64,), FLOAT_DTYPES[3]),
    }


@pytest.mark.parametrize("per_tensor", [False, True])
def test_value_many_and_its_gradient(weights, per_tensor):
    tree = _tree(weights)
    leaves = jax.tree.leaves(tree)
    if per_tensor:
        l1 = [0.1 * (i + 1) for i in range(len(leaves))]
        l2 = jax.tree.unflatten(jax.tree.structure(tree), [0.05 * (i + 1) for i in range(len(leaves))])
        l2_list = jax.tree.leaves(l2)
    else:
        l1, l2 = 0.1, 0.05
        l1_list, l2_list = [l1] * len(leaves), [l2] * len(leaves)
    l1_list = l1 if per_tensor else l1_list
    jtree = jax.tree.map(jnp.asarray, tree)
    value = fj.value_many(jtree, l1, l2)
    assert_value_close(value, reference.value_many(leaves, l1_list, l2_list), 2e-6)

    grads = jax.jit(jax.grad(lambda t: fj.value_many(t, l1, l2)))(jtree)
    for w, g, a, b in zip(leaves, jax.tree.leaves(grads), l1_list, l2_list):
        assert_elements_close(np.asarray(g), reference.grad(w, a, b), w.dtype)


def test_gradient_of_some_weights_and_of_per_tensor_factors(weights):
    a, b = weights((300,), np.float32), weights((40,), np.float16)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    l1s, l2s = [0.1, 0.2], [0.3, 0.4]
    # Only b is differentiated: the handler is asked for b's gradient alone, with b's factors.
    gb = jax.grad(lambda t: fj.value_many({"a": ja, "b": t}, l1s, l2s))(jb)
    assert_elements_close(np.asarray(gb), reference.grad(b, 0.2, 0.4), np.float16)
    d1 = jax.grad(lambda f: fj.value_many({"a": ja, "b": jb}, f, l2s))(jnp.asarray(l1s))
    for got, w in zip(np.asarray(d1), (a, b)):
        assert_value_close(got, np.abs(w.astype(np.float64)).sum(), 2e-6)


def test_value_and_grad_many_matches_reference(weights):
    tree = _tree(weights)
    leaves = jax.tree.leaves(tree)
    jtree = jax.tree.map(jnp.asarray, tree)
    value, grads = jax.jit(fastpenalty.jax.value_and_grad_many)(jtree, 0.02, 0.3)
    assert jax.tree.structure(grads) == jax.tree.structure(tree)
    assert_value_close(value, reference.value_many(leaves, 0.02, 0.3), 2e-6)
    for w, g in zip(leaves, jax.tree.leaves(grads)):
        assert_elements_close(np.asarray(g), reference.grad(w, 0.02, 0.3), w.dtype)


@pytest.mark.parametrize("donate", [False, True])
def test_value_and_grad_many_adds_into_gradients(weights, donate):
    tree = _tree(weights)
    leaves = jax.tree.leaves(tree)
    base = [weights(w.shape, w.dtype) for w in leaves]
    base_tree = jax.tree.unflatten(jax.tree.structure(tree), base)

    def step(params, grads):
        return fj.value_and_grad_many(params, 0.02, 0.3, add_to=grads)

    fn = jax.jit(step, donate_argnums=(1,) if donate else ())
    jgrads = jax.tree.map(jnp.asarray, base_tree)
    value, out = fn(jax.tree.map(jnp.asarray, tree), jgrads)
    assert_value_close(value, reference.value_many(leaves, 0.02, 0.3), 2e-6)
    for w, g0, g in zip(leaves, base, jax.tree.leaves(out)):
        expected = g0.copy()
        reference.accumulate_(w, expected, 0.02, 0.3)
        terms = np.abs(g0.astype(np.float64)) + np.abs(reference.grad(w, 0.02, 0.3).astype(np.float64))
        assert_elements_close(np.asarray(g), expected, w.dtype, scale=terms)
    if not donate:  # the caller's gradients are untouched when XLA may not reuse them
        for g0, g in zip(base, jax.tree.leaves(jgrads)):
            np.testing.assert_array_equal(np.asarray(g), g0)


def test_matches_jax_autodiff_of_the_same_penalty(weights):
    # No exact zeros: JAX differentiates |w| at 0 as 1, the Keras convention (and ours) as 0.
    tree = jax.tree.map(jnp.asarray, {"a": weights((40, 30), np.float32, zero_fraction=0.0),
                                      "b": weights((17,), np.float32, zero_fraction=0.0)})

    def plain(t):
        return sum(0.01 * jnp.sum(jnp.abs(p)) + 0.02 * jnp.sum(p * p) for p in jax.tree.leaves(t))

    v_ref, g_ref = jax.value_and_grad(plain)(tree)
    v, g = fj.value_and_grad_many(tree, 0.01, 0.02)
    assert_value_close(v, v_ref, 2e-6)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)


def test_errors():
    w = jnp.ones(8, jnp.float32)
    with pytest.raises(ValueError, match="factor"):
        fj.l1(w, -0.5)
    with pytest.raises(ValueError, match="l2"):
        fj.l1_l2(w, 0.1, float("nan"))
    with pytest.raises(TypeError, match="int32"):
        fj.l2(jnp.ones(3, jnp.int32))
    with pytest.raises(ValueError, match="entries"):
        fj.value_many([w, w], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="add_to"):
        fj.value_and_grad_many([w], 0.1, add_to=[jnp.ones(7, jnp.float32)])
    # A traced factor is checked by the C ABI when the computation runs.
    with pytest.raises(Exception, match="l1 must be finite and >= 0"):
        jax.block_until_ready(jax.jit(fj.l1_l2)(w, -1.0, 0.0))
