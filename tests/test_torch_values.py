"""Torch tensors through the public functions: values, gradients and in-place updates against the
float64 oracle for every dtype and odd sizes, through both routes a CPU call can take (straight
to the kernels, or through the fastpenalty:: custom ops), with tensor factors and per-tensor
factors, and the result types of the contract."""
import math

import ml_dtypes
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import fastpenalty
from fastpenalty import reference
from fastpenalty.torch import functional
from _tolerances import VALUE_RTOL, assert_elements_close, assert_value_close, value_rtol

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
                np.dtype(np.float16): torch.float16, np.dtype(ml_dtypes.bfloat16): torch.bfloat16}
SIZES = (0, 1, 7, 16, 17, 33, 65, 1000, 100003)
L1, L2 = 0.013, 0.021


def to_torch(a: np.ndarray) -> torch.Tensor:
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(a.copy())


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


class Dispatcher(TorchFunctionMode):
    """A pass-through mode: with it active the functions cannot take their direct route to the
    kernels and go through the custom ops instead."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.fixture(params=["direct", "custom_op"])
def route(request):
    """Runs the test once on each route of a CPU call."""
    if request.param == "direct":
        yield request.param
    else:
        with Dispatcher():
            yield request.param


def expected_value_dtype(dtypes):
    return torch.float64 if dtypes and all(d == torch.float64 for d in dtypes) else torch.float32


def check_value_tensor(v, dtypes):
    assert isinstance(v, torch.Tensor) and v.dim() == 0 and v.device.type == "cpu"
    assert v.dtype == expected_value_dtype(dtypes)


VALUE_OPS = {
    "l1": (lambda m, w: m.l1(w, L1)),
    "l2": (lambda m, w: m.l2(w, L2)),
    "l1_l2": (lambda m, w: m.l1_l2(w, L1, L2)),
}


@pytest.mark.parametrize("op", sorted(VALUE_OPS))
@pytest.mark.parametrize("size", SIZES)
def test_value_matches_reference(route, float_dtype, size, op, weights):
    a = weights(size, float_dtype)
    w = to_torch(a)
    v = VALUE_OPS[op](fastpenalty, w)
    check_value_tensor(v, [w.dtype])
    assert_value_close(v.item(), VALUE_OPS[op](reference, a), VALUE_RTOL[float_dtype])
    assert np.array_equal(to_numpy(w).view(np.uint8), a.view(np.uint8)), "a value op wrote into w"


@pytest.mark.parametrize("size", SIZES)
def test_grad_matches_reference(route, float_dtype, size, weights):
    a = weights(size, float_dtype)
    w = to_torch(a)
    out = fastpenalty.grad(w, L1, L2)
    assert out.shape == w.shape and out.dtype == w.dtype
    assert size == 0 or out.data_ptr() != w.data_ptr()
    assert_elements_close(to_numpy(out), reference.grad(a, L1, L2), float_dtype)


@pytest.mark.parametrize("size", SIZES)
def test_accumulate_matches_reference(route, float_dtype, size, weights):
    a, b = weights(size, float_dtype), weights(size, float_dtype)
    w, g = to_torch(a), to_torch(b)
    v = fastpenalty.accumulate_(w, g, L1, L2)
    check_value_tensor(v, [w.dtype])
    expected_g = b.copy()
    expected_v = reference.accumulate_(a, expected_g, L1, L2)
    assert_value_close(v.item(), expected_v, VALUE_RTOL[float_dtype])
    scale = np.abs(b.astype(np.float64)) + np.abs(reference.grad(a.astype(np.float64), L1, L2))
    assert_elements_close(to_numpy(g), expected_g, float_dtype, scale=scale)


def mixed_weights(weights, sizes=(5, 0, 33, 1000, 17)):
    dtypes = list(TORCH_DTYPES)
    arrays = [weights(n, dtypes[i % len(dtypes)]) for i, n in enumerate(sizes)]
    return arrays, [to_torch(a) for a in arrays]


def reference_factor(f):
    if isinstance(f, (list, tuple)):
        return [float(v) for v in f]
    if isinstance(f, torch.Tensor):
        return f.tolist() if f.dim() else f.item()
    return float(f)


PER_TENSOR_L1 = [0.0, 0.5, 0.013, 0.2, 1e-3]
PER_TENSOR_L2 = [0.021, 0.0, 0.3, 2.0, 0.1]


@pytest.mark.parametrize("form", ["floats", "lists", "tuple_of_tensors", "tensors", "1d_tensors"])
def test_many_matches_reference(route, form, weights):
    arrays, ws = mixed_weights(weights)
    grads = [weights(a.shape, a.dtype) for a in arrays]
    gs = [to_torch(b) for b in grads]
    if form == "floats":
        l1, l2 = L1, L2
    elif form == "lists":
        l1, l2 = PER_TENSOR_L1, PER_TENSOR_L2
    elif form == "tuple_of_tensors":
        l1 = tuple(torch.tensor(v) for v in PER_TENSOR_L1)
        l2 = tuple(torch.tensor(v, dtype=torch.float64) for v in PER_TENSOR_L2)
    elif form == "tensors":
        l1, l2 = torch.tensor(L1), torch.tensor(L2, dtype=torch.float64)
    else:
        l1, l2 = torch.tensor(PER_TENSOR_L1), torch.tensor(PER_TENSOR_L2, dtype=torch.float16)
    r1, r2 = reference_factor(l1), reference_factor(l2)

    rtol = value_rtol([a.dtype for a in arrays]) * 2  # fp16 factors are rounded: use theirs
    v = fastpenalty.value_many(ws, l1, l2)
    check_value_tensor(v, [w.dtype for w in ws])
    assert_value_close(v.item(), reference.value_many(arrays, r1, r2), rtol)

    expected = [b.copy() for b in grads]
    expected_v = reference.accumulate_many_(arrays, expected, r1, r2)
    v = fastpenalty.accumulate_many_(ws, gs, l1, l2)
    assert_value_close(v.item(), expected_v, rtol)
    for g, b, e, a in zip(gs, grads, expected, arrays):
        scale = np.abs(b.astype(np.float64)) + np.abs(a.astype(np.float64)) * 4.0 + 1.0
        assert_elements_close(to_numpy(g), e, a.dtype, scale=scale)


def test_all_fp64_many_gives_fp64(route):
    ws = [torch.randn(10, dtype=torch.float64), torch.randn(3, dtype=torch.float64)]
    assert fastpenalty.value_many(ws, L1, L2).dtype == torch.float64
    assert fastpenalty.value_many(ws + [torch.randn(2)], L1, L2).dtype == torch.float32


def test_routes_agree_bit_for_bit(weights):
    a = weights(4099, np.float16)
    w = to_torch(a)
    direct = fastpenalty.l1_l2(w, L1, L2), fastpenalty.grad(w, L1, L2)
    with Dispatcher():
        through_op = fastpenalty.l1_l2(w, L1, L2), fastpenalty.grad(w, L1, L2)
    assert direct[0].item() == through_op[0].item()
    assert torch.equal(direct[1], through_op[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_value_never_overflows(route, dtype):
    w = torch.full((4096,), 60000.0 if dtype == torch.float16 else 3e38, dtype=dtype)
    v = fastpenalty.l2(w, 1.0)
    assert v.dtype == torch.float32
    expected = 4096 * float(w[0]) ** 2
    if dtype == torch.float16:  # 1.5e13 is far beyond fp16 but fine in fp32
        assert math.isfinite(v.item())
        assert_value_close(v.item(), expected, 2e-6)
    else:  # bf16 reaches fp32's range: the sum overflows fp32 like an fp32 sum would
        assert v.item() == math.inf
    assert fastpenalty.grad(w[:8], 0.0, 1e-9).dtype == dtype


def test_tensor_factors_equal_number_factors(route, weights):
    w = to_torch(weights(1000, np.float32))
    g1, g2 = torch.zeros(1000), torch.zeros(1000)
    for l1, l2 in [(torch.tensor(L1, dtype=torch.float64), torch.tensor(L2, dtype=torch.float64)),
                   (torch.tensor([L1]), torch.tensor(L2))]:
        assert fastpenalty.l1_l2(w, l1, l2).item() == fastpenalty.l1_l2(w, L1, L2).item()
        assert torch.equal(fastpenalty.grad(w, l1, l2), fastpenalty.grad(w, L1, L2))
        fastpenalty.accumulate_(w, g1, l1, l2)
        fastpenalty.accumulate_(w, g2, L1, L2)
        assert torch.equal(g1, g2)
    assert fastpenalty.l2(w, torch.tensor(2)).item() == fastpenalty.l2(w, 2.0).item()


def test_empty_inputs_give_zero(route):
    e = torch.empty(0)
    assert fastpenalty.l1_l2(e, 1.0, 1.0).item() == 0.0
    assert fastpenalty.grad(e, 1.0, 1.0).shape == (0,)
    assert fastpenalty.accumulate_(e, torch.empty(0), 1.0, 1.0).item() == 0.0
    assert fastpenalty.value_many([e, torch.empty(0, 3)], 1.0, 1.0).item() == 0.0
    assert functional.value_many([], 1.0, 1.0).item() == 0.0
    assert functional.accumulate_many_([], [], 1.0, 1.0).item() == 0.0


def test_zero_factors_leave_g_untouched(route):
    w = torch.tensor([1.0, float("nan"), -2.0])
    g = torch.tensor([0.5, -0.5, 0.25])
    before = g.clone()
    assert fastpenalty.accumulate_(w, g, 0.0, 0.0).item() == 0.0
    assert torch.equal(g, before)
    assert torch.equal(fastpenalty.grad(w, 0.0, 0.0), torch.zeros(3))


def test_nan_and_inf_propagate(route):
    w = torch.tensor([1.0, float("nan"), float("inf"), 0.0])
    assert math.isnan(fastpenalty.l1(w, 0.1).item())
    out = fastpenalty.grad(w, 0.0, 0.5)
    assert math.isnan(out[1].item()) and out[2].item() == math.inf and out[3].item() == 0.0
    assert fastpenalty.l2(torch.tensor([1.0, float("inf")]), 0.1).item() == math.inf


def test_in_place_update_bumps_the_version_counter(route):
    w, g = torch.randn(16), torch.zeros(16)
    before = g._version
    fastpenalty.accumulate_(w, g, L1, L2)
    gs = [torch.zeros(3), torch.zeros(4)]
    versions = [t._version for t in gs]
    fastpenalty.accumulate_many_([torch.randn(3), torch.randn(4)], gs, L1, L2)
    assert g._version > before
    assert all(t._version > v for t, v in zip(gs, versions))


def test_value_is_detached_for_in_place_updates(route):
    w = torch.randn(8, requires_grad=True)
    g = torch.zeros(8)
    assert not fastpenalty.accumulate_(w, g, L1, L2).requires_grad
    assert not fastpenalty.accumulate_many_([w], [g], L1, L2).requires_grad
    assert torch.equal(g, 2 * fastpenalty.grad(w.detach(), L1, L2))
