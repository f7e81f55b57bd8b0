"""Arrays of other frameworks through DLPack: a minimal producer (any object with __dlpack__ and
__dlpack_device__ only), JAX arrays where jax is installed, and the refusals (immutable or
read-only targets, CUDA memory without a CUDA torch, mixed devices)."""
import numpy as np
import pytest
from _tolerances import FLOAT_DTYPES, DTYPE_IDS, BFLOAT16, assert_elements_close, assert_value_close, value_rtol

import fastpenalty
from fastpenalty import _dlpack, reference


class Producer:
    """Speaks DLPack and nothing else: no __array__, no __array_namespace__, no buffer protocol."""

    def __init__(self, array, device=None):
        self._array = array
        self._device = device

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._device if self._device is not None else self._array.__dlpack_device__()


def _producer(a):
    """bfloat16 goes through torch, which can export it (NumPy cannot)."""
    if a.dtype == BFLOAT16:
        torch = pytest.importorskip("torch")
        return Producer(torch.from_numpy(a.view(np.int16)).view(torch.bfloat16))
    return Producer(a)


DTYPES = pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])


@DTYPES
def test_values_and_grad_of_a_plain_producer(weights, dtype):
    w = weights((3, 1001), dtype)
    p = _producer(w)
    rtol = value_rtol([dtype])
    assert isinstance(fastpenalty.l1_l2(p, 0.2, 0.3), float)
    assert_value_close(fastpenalty.l1(p, 0.2), reference.l1(w, 0.2), rtol)
    assert_value_close(fastpenalty.l2(p, 0.3), reference.l2(w, 0.3), rtol)
    assert_value_close(fastpenalty.l1_l2(p, 0.2, 0.3), reference.l1_l2(w, 0.2, 0.3), rtol)
    g = fastpenalty.grad(p, 0.2, 0.3)
    assert isinstance(g, np.ndarray)  # a producer with no from_dlpack of its own gets NumPy back
    assert_elements_close(g, reference.grad(w, 0.2, 0.3), dtype)


def test_the_view_is_not_a_copy(weights):
    w = weights((100,), np.float32)
    assert _dlpack._host_view(Producer(w), "w").ctypes.data == w.ctypes.data


@DTYPES
def test_accumulate_writes_through_to_the_producers_memory(weights, dtype):
    w = weights((2, 777), dtype)
    g = weights((2, 777), dtype)
    expected = g.copy()
    expected_value = reference.accumulate_(w, expected, 0.1, 0.4)
    value = fastpenalty.accumulate_(_producer(w), _producer(g), 0.1, 0.4)
    assert_value_close(value, expected_value, value_rtol([dtype]))
    terms = np.abs(g.astype(np.float64)) + np.abs(reference.grad(w, 0.1, 0.4).astype(np.float64))
    assert_elements_close(g, expected, dtype, scale=terms)


def test_many_with_mixed_numpy_and_producers(weights):
    ws = [weights((50,), np.float32), weights((9, 9), np.float64), weights((5,), np.float16)]
    gs = [weights(w.shape, w.dtype) for w in ws]
    mixed_ws = [ws[0], Producer(ws[1]), Producer(ws[2])]
    assert_value_close(fastpenalty.value_many(mixed_ws, 0.1, [0.2, 0.3, 0.4]),
                       reference.value_many(ws, 0.1, [0.2, 0.3, 0.4]), 2e-6)
    expected = [g.copy() for g in gs]
    want = reference.accumulate_many_(ws, expected, 0.1, 0.2)
    got = fastpenalty.accumulate_many_(mixed_ws, [Producer(gs[0]), gs[1], Producer(gs[2])], 0.1, 0.2)
    assert_value_close(got, want, 2e-6)
    for g, e, w in zip(gs, expected, ws):
        terms = np.abs(e.astype(np.float64)) + np.abs(reference.grad(w, 0.1, 0.2).astype(np.float64))
        assert_elements_close(g, e, w.dtype, scale=terms)


def test_read_only_target_is_refused_before_writing(weights):
    w = weights((64,), np.float32)
    g = weights((64,), np.float32)
    g.flags.writeable = False
    before = g.copy()
    with pytest.raises(ValueError, match="read-only"):
        fastpenalty.accumulate_(Producer(w), Producer(g), 0.1, 0.1)
    np.testing.assert_array_equal(g, before)


def test_cuda_memory_without_cuda_torch_is_refused_clearly(weights):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    on_gpu = Producer(weights((8,), np.float32), device=(2, 0))
    with pytest.raises(RuntimeError, match="CUDA memory"):
        fastpenalty.l1(on_gpu)


def test_mixed_devices_are_refused(weights):
    w = Producer(weights((8,), np.float32))
    g = Producer(weights((8,), np.float32), device=(2, 0))
    with pytest.raises(ValueError, match="CPU memory or all in CUDA memory"):
        fastpenalty.accumulate_(w, g, 0.1, 0.1)


def test_bad_factors_are_checked_first(weights):
    with pytest.raises(ValueError, match="l2"):
        fastpenalty.l1_l2(Producer(weights((8,), np.float32)), 0.1, -1.0)


# ------------------------------------------------------------------------------------------ JAX
@pytest.fixture
def jnp():
    pytest.importorskip("jax")
    import jax.numpy

    return jax.numpy


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BFLOAT16], ids=["float32", "float16", "bfloat16"])
def test_jax_arrays(weights, jnp, dtype):
    import jax

    w = weights((2, 3000), dtype)
    jw = jnp.asarray(w)
    if dtype == BFLOAT16:
        pytest.importorskip("torch")  # NumPy cannot import bfloat16 through DLPack; torch can
    assert_value_close(fastpenalty.l1_l2(jw, 0.2, 0.3), reference.l1_l2(w, 0.2, 0.3), value_rtol([dtype]))
    g = fastpenalty.grad(jw, 0.2, 0.3)
    assert isinstance(g, jax.Array) and g.dtype == jw.dtype and g.shape == jw.shape
    assert_elements_close(np.asarray(g), reference.grad(w, 0.2, 0.3), dtype)


def test_jax_view_is_not_a_copy(weights, jnp):
    jw = jnp.asarray(weights((1000,), np.float32))
    assert _dlpack._host_view(jw, "w").ctypes.data == jw.unsafe_buffer_pointer()


def test_jax_arrays_cannot_be_accumulated_into(weights, jnp):
    w = jnp.asarray(weights((16,), np.float32))
    g = jnp.asarray(weights((16,), np.float32))
    before = np.asarray(g).copy()
    with pytest.raises(ValueError, match="immutable"):
        fastpenalty.accumulate_(w, g, 0.1, 0.1)
    with pytest.raises(ValueError, match="immutable"):
        fastpenalty.accumulate_many_([w], [g], 0.1, 0.1)
    np.testing.assert_array_equal(np.asarray(g), before)


def test_jax_weights_numpy_gradients(weights, jnp):
    w = weights((16,), np.float32)
    g = weights((16,), np.float32)
    expected = g.copy()
    want = reference.accumulate_(w, expected, 0.1, 0.1)
    assert_value_close(fastpenalty.accumulate_(jnp.asarray(w), g, 0.1, 0.1), want, 2e-6)
    np.testing.assert_allclose(g, expected, rtol=1e-6)
