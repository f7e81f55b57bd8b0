"""fastpenalty.keras on fastpenalty's kernels, on the backend this process runs (KERAS_BACKEND;
torch when unset). tests/test_keras_backends.py runs this file again under jax and numpy, each in
its own process (Keras fixes its backend at import). Values and gradients are checked against
fastpenalty.reference over dtypes, odd sizes and every ISA the machine has."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import ml_dtypes  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastpenalty  # noqa: E402
import fastpenalty.keras as fk  # noqa: E402
from fastpenalty import reference  # noqa: E402
from fastpenalty.keras import _math  # noqa: E402

BACKEND = keras.backend.backend()
HAS_FLOAT64 = keras.backend.standardize_dtype(keras.ops.zeros((), "float64").dtype) == "float64"
DTYPES = ["float32", "float16", "bfloat16"] + (["float64"] if HAS_FLOAT64 else [])
SIZES = (0, 1, 2, 3, 5, 7, 15, 17, 31, 33, 63, 65, 97, 16385)
# (regularizer, l1, l2 as the kernels see them): L1's factor is float32-rounded, as Keras's.
REGULARIZERS = [
    (fk.L1(0.03), float(np.float32(0.03)), 0.0),
    (fk.L2(0.07), 0.0, 0.07),
    (fk.L1L2(0.02, 0.05), 0.02, 0.05),
]
REG_IDS = ["L1", "L2", "L1L2"]

if BACKEND == "jax":
    fj = pytest.importorskip("fastpenalty.jax", reason="built without the JAX FFI handlers")


def _np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def _weights(shape, dtype, seed):
    w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if w.size >= 3:
        w.reshape(-1)[:3] = 0.0  # sign(0) = 0
    return w.astype(_np_dtype(dtype))


def _to_float(t):
    return float(keras.ops.convert_to_numpy(keras.ops.cast(t, "float64")))


def _dtype_name(t):
    return keras.backend.standardize_dtype(t.dtype)


def _rounded(value, dtype):
    """The oracle's value as the regularizer returns it: rounded to the weight's dtype."""
    return float(np.asarray(value, dtype=np.float64).astype(_np_dtype(dtype)))


def _value_rtol(dtype):
    # fp32 accumulation (2e-6, the core's tolerance), then one rounding to the weight's dtype.
    return 1e-12 if dtype == "float64" else 2e-6 + float(ml_dtypes.finfo(_np_dtype(dtype)).eps)


@pytest.fixture
def no_fallback(monkeypatch):
    """Fails the test if the value is computed by keras.ops instead of the kernels."""

    def fallback(*args):
        raise AssertionError("keras.ops fallback taken")

    monkeypatch.setattr(_math, "keras_ops_penalty", fallback)


@pytest.mark.parametrize("reg, l1, l2", REGULARIZERS, ids=REG_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", SIZES)
def test_value_matches_reference(reg, l1, l2, dtype, size, isa, no_fallback):
    w = _weights((size,), dtype, seed=size)
    for x in (keras.Variable(w, dtype=dtype), keras.ops.convert_to_tensor(w, dtype=dtype)):
        got = reg(x)
        assert _dtype_name(got) == dtype and tuple(got.shape) == ()
        want = _rounded(reference.l1_l2(w, l1=l1, l2=l2), dtype)
        np.testing.assert_allclose(_to_float(got), want, rtol=_value_rtol(dtype), atol=1e-30)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_sums_in_fp32(dtype, no_fallback):
    # Keras sums in the weight's dtype: fp16 overflows to inf past 65504, and bf16 (8 bits of
    # mantissa) stops growing once the sum is large. Here the penalty is the exact one, rounded.
    w = np.random.default_rng(1).uniform(0.5, 1.5, 20000).astype(_np_dtype(dtype))
    got = _to_float(fk.L1(0.5)(keras.ops.convert_to_tensor(w, dtype=dtype)))
    want = _rounded(reference.l1(w, 0.5), dtype)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, want, rtol=_value_rtol(dtype))


def test_the_backends_kernel_entry_point_is_called(monkeypatch):
    x = keras.Variable(_weights((8, 8), "float32", seed=2))
    regs = (fk.L1(0.1), fk.L2(0.1), fk.L1L2(0.1, 0.1))
    if BACKEND == "jax":
        import jax

        # Traced once and cached, so the evidence is the FFI call in the lowered computation.
        for reg in regs:
            assert "fastpenalty_value_many" in jax.jit(reg).lower(x.value).as_text()
        return
    if BACKEND not in ("torch", "numpy"):
        pytest.skip(f"no kernel path on {BACKEND}")
    calls = []
    for name in ("l1", "l2", "l1_l2"):
        real = getattr(fastpenalty, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(fastpenalty, name, spy)
    for reg in regs:
        reg(x)
    assert len(calls) == 3, calls


def test_unknown_backends_take_the_keras_ops_path(monkeypatch):
    x = keras.ops.convert_to_tensor(_weights((16, 4), "float32", seed=3))
    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    got = fk.L1L2(0.02, 0.05)(x)
    assert _to_float(got) == _to_float(keras.regularizers.L1L2(0.02, 0.05)(x))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_keras_ops_fallback_also_sums_half_precision_in_fp32(dtype):
    x = keras.ops.ones((100000,), dtype=dtype)  # sum|x| is past fp16's range; 0.01 * it is not
    got = _math.keras_ops_penalty(x, 0.01, 0.0)
    assert _dtype_name(got) == dtype
    np.testing.assert_allclose(_to_float(got), 1000.0, rtol=_value_rtol(dtype))


# ---------------------------------------------------------------- gradients, per backend


def _grad_of(reg, w, dtype):
    """d reg(w) / dw through the backend's autodiff, as a float64 NumPy array."""
    if BACKEND == "torch":
        var = keras.Variable(w, dtype=dtype)
        reg(var).backward()
        import torch

        g = var.value.grad
        assert g.dtype == var.value.dtype
        return g.detach().cpu().to(torch.float64).numpy()
    if BACKEND == "jax":
        import jax

        g = jax.grad(lambda a: reg(a).astype("float32"))(keras.ops.convert_to_tensor(w, dtype=dtype))
        assert g.dtype == _np_dtype(dtype)
        return np.asarray(g, dtype=np.float64)
    pytest.skip(f"the {BACKEND} backend does not differentiate")


@pytest.mark.parametrize("reg, l1, l2", REGULARIZERS, ids=REG_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", (0, 1, 3, 17, 65, 16385))
def test_gradient_matches_reference(reg, l1, l2, dtype, size, isa, no_fallback):
    w = _weights((size,), dtype, seed=size + 1)
    got = _grad_of(reg, w, dtype)
    want = reference.grad(w, l1=l1, l2=l2).astype(_np_dtype(dtype)).astype(np.float64)
    eps = float(ml_dtypes.finfo(_np_dtype(dtype)).eps)
    np.testing.assert_allclose(got, want, rtol=3 * eps, atol=1e-30)


@pytest.mark.skipif(BACKEND != "jax", reason="jax only")
def test_jax_jit_gives_the_eager_value_and_gradient(no_fallback):
    import jax

    w = keras.ops.convert_to_tensor(_weights((33, 5), "float32", seed=4))
    reg = fk.L1L2(0.02, 0.05)
    eager_value, eager_grad = reg(w), jax.grad(reg)(w)
    jit_value, jit_grad = jax.jit(reg)(w), jax.jit(jax.grad(reg))(w)
    assert float(jit_value) == float(eager_value)
    np.testing.assert_array_equal(np.asarray(jit_grad), np.asarray(eager_grad))
    text = jax.jit(reg).lower(w).as_text()
    assert "fastpenalty_value_many" in text


@pytest.mark.skipif(BACKEND != "jax", reason="jax only")
def test_jax_platform_without_handlers_falls_back(monkeypatch):
    monkeypatch.setattr(fj, "PLATFORMS", [])
    x = keras.ops.ones((100000,), dtype="float16")
    got = fk.L1(0.01)(x)
    np.testing.assert_allclose(_to_float(got), 1000.0, rtol=_value_rtol("float16"))


@pytest.mark.skipif(BACKEND != "torch", reason="torch only")
@pytest.mark.parametrize("reg, l1, l2", REGULARIZERS, ids=REG_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_torch_direct_path_equals_the_custom_ops(reg, l1, l2, dtype, monkeypatch):
    from fastpenalty.keras import _torch_kernels

    w = _weights((7, 19), dtype, seed=5)
    results = []
    for eager in (True, False):
        monkeypatch.setattr(_torch_kernels, "_eager", lambda e=eager: e)
        var = keras.Variable(w, dtype=dtype)
        value = reg(var)
        value.backward()
        results.append((value.item(), var.value.grad.float().numpy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.skipif(BACKEND != "torch", reason="torch only")
def test_torch_direct_path_is_taken_only_in_eager_mode(monkeypatch):
    import torch

    from fastpenalty.keras import _torch_kernels

    calls = []
    real = _torch_kernels._Direct.apply

    def spy(*args):
        calls.append(args[1:])
        return real(*args)

    monkeypatch.setattr(_torch_kernels._Direct, "apply", spy)
    var = keras.Variable(_weights((4, 4), "float32", seed=6))
    fk.L2(0.5)(var)
    assert calls == [(0.0, 0.5)]
    compiled = torch.compile(lambda t: fk.L2(0.5)(t), backend="eager", fullgraph=True)
    want = reference.l2(_weights((4, 4), "float32", seed=6), 0.5)
    np.testing.assert_allclose(float(compiled(var.value)), want, rtol=2e-6)
    assert len(calls) == 1
