"""Bad torch input raises a clear error before anything is written (every g byte for byte
unchanged), on both routes of a CPU call; check_finite=True names the tensor; CUDA tensors
without the CUDA kernels get a clear error."""
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

import fastpenalty
from fastpenalty.torch import _cuda, _ops


class Dispatcher(TorchFunctionMode):
    """Forces the custom-op route (see test_torch_values)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@pytest.fixture(params=["direct", "custom_op"])
def route(request):
    if request.param == "direct":
        yield request.param
    else:
        with Dispatcher():
            yield request.param


def raises_leaving(gs, exc, fn, match=None):
    """fn() raises exc (message matching `match`) and leaves every tensor of gs unchanged."""
    before = [g.clone() for g in gs]
    with pytest.raises(exc, match=match):
        fn()
    for g, b in zip(gs, before):
        assert torch.equal(g.view(torch.uint8) if g.dtype == torch.bool else g, b), \
            "an error path wrote into g"


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool,
                                   torch.complex64])
def test_non_float_dtypes_are_type_errors(route, dtype):
    w = torch.ones(10, dtype=dtype)
    for fn in (fastpenalty.l1, fastpenalty.l2, fastpenalty.l1_l2, fastpenalty.grad):
        with pytest.raises(TypeError, match=f"w has dtype {dtype}"):
            fn(w)
    with pytest.raises(TypeError, match=r"ws\[1\] has dtype"):
        fastpenalty.value_many([torch.ones(3), w])
    g = torch.zeros(10, dtype=dtype)
    raises_leaving([g], TypeError, lambda: fastpenalty.accumulate_(torch.ones(10), g, 0.1, 0.1))


def test_mismatched_pairs_leave_every_g_unchanged(route):
    w, g = torch.randn(6), torch.randn(6)
    good = torch.randn(4)
    cases = [
        (ValueError, "shape", lambda: fastpenalty.accumulate_(w, torch.randn(7), 0.1, 0.1)),
        (ValueError, "dtype", lambda: fastpenalty.accumulate_(w, torch.randn(6).double(), 0.1, 0.1)),
        (ValueError, r"gs\[1\] has shape", lambda: fastpenalty.accumulate_many_(
            [torch.randn(4), w], [good, torch.randn(2, 3)], 0.1, 0.1)),
        (ValueError, "one g per w", lambda: fastpenalty.accumulate_many_([w], [g, good], 0.1, 0.1)),
    ]
    for exc, match, fn in cases:
        raises_leaving([g, good], exc, fn, match)


def test_overlapping_tensors_are_refused(route):
    base = torch.randn(20)
    w, g = base[:10], base[5:15]
    raises_leaving([base], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1),
                   "share memory")
    raises_leaving([base], ValueError, lambda: fastpenalty.accumulate_(base, base, 0.1, 0.1),
                   "share memory")
    a, b = torch.randn(8), torch.randn(8)
    ga = torch.zeros(8)
    raises_leaving([ga, a], ValueError, lambda: fastpenalty.accumulate_many_([a, b], [ga, a], 0.1, 0.1),
                   r"ws\[0\] and gs\[1\] share memory")
    raises_leaving([ga], ValueError, lambda: fastpenalty.accumulate_many_([a, b], [ga, ga], 0.1, 0.1),
                   r"gs\[0\] and gs\[1\] share memory")
    # reading one tensor twice is fine
    gb = torch.zeros(8)
    fastpenalty.accumulate_many_([a, a], [ga, gb], 0.1, 0.1)
    assert torch.equal(ga, gb)


def test_g_that_cannot_be_written_is_refused(route):
    w = torch.randn(3, 4)
    expanded = torch.zeros(4).expand(3, 4)
    raises_leaving([expanded], ValueError, lambda: fastpenalty.accumulate_(w, expanded, 0.1, 0.1),
                   "may share memory")
    needs_grad = torch.zeros(3, 4, requires_grad=True)
    raises_leaving([needs_grad], ValueError,
                   lambda: fastpenalty.accumulate_(w, needs_grad, 0.1, 0.1), "requires grad")
    with torch.inference_mode():
        frozen = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="inference tensor"):
        fastpenalty.accumulate_(w, frozen, 0.1, 0.1)
    assert torch.equal(frozen, torch.zeros(3, 4))
    with torch.inference_mode():  # inside inference mode it may be written
        fastpenalty.accumulate_(w, frozen, 0.0, 0.5)
    assert torch.equal(frozen, w)


BAD_FACTORS = [-0.1, float("nan"), float("inf"), torch.tensor(-1.0), torch.tensor(float("nan"))]


@pytest.mark.parametrize("bad", BAD_FACTORS, ids=["negative", "nan", "inf", "tensor", "tensor_nan"])
def test_bad_factors_are_named(route, bad):
    w, g = torch.randn(5), torch.randn(5)
    with pytest.raises(ValueError, match="factor must be finite and >= 0"):
        fastpenalty.l1(w, bad)
    with pytest.raises(ValueError, match="l2 must be finite and >= 0"):
        fastpenalty.l1_l2(w, 0.1, bad)
    with pytest.raises(ValueError, match="l1 must be finite"):
        fastpenalty.grad(w, bad, 0.1)
    raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, bad), "l2 must be finite")
    raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_many_([w, w], [g, torch.zeros(5)],
                                                                        [0.1, bad], 0.1),
                   r"l1\[1\] must be finite")


def test_malformed_factors(route):
    w, g = torch.randn(5), torch.randn(5)
    with pytest.raises(TypeError, match="real number"):
        fastpenalty.l2(w, [0.1])
    with pytest.raises(TypeError, match="real number"):
        fastpenalty.l2(w, torch.tensor(True))
    with pytest.raises(ValueError, match="single factor"):
        fastpenalty.l2(w, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="2 entries for 3 tensors"):
        fastpenalty.value_many([w, w, w], [0.1, 0.2])
    with pytest.raises(ValueError, match="one per tensor"):
        fastpenalty.value_many([w, w, w], torch.tensor([0.1, 0.2]))
    raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_many_([w], [g], [0.1, 0.2], 0.1),
                   "2 entries for 1 tensors")


def test_ops_check_their_own_factors():
    # the ops are public through torch.ops.fastpenalty: they check what reaches them too
    w, g = torch.randn(5), torch.randn(5)
    bad = torch.tensor(-1.0, dtype=torch.float64)
    ok = torch.tensor(0.1, dtype=torch.float64)
    with pytest.raises(ValueError, match="l1 must be finite"):
        _ops.value(w, bad, ok, False)
    raises_leaving([g], ValueError, lambda: _ops.accumulate_(w, g, ok, bad, False), "l2 must be")
    with pytest.raises(TypeError, match="float64 tensor"):
        _ops.value(w, ok.float(), ok, False)
    with pytest.raises(ValueError, match="one per tensor"):
        _ops.value_many([w, w], torch.ones(3, dtype=torch.float64), ok, False)


def test_check_finite_names_the_tensor(route):
    w = torch.tensor([1.0, float("nan"), 2.0])
    ok = torch.randn(3)
    g = torch.zeros(3)
    for fn in (fastpenalty.l1, fastpenalty.l2, fastpenalty.l1_l2):
        assert torch.isnan(fn(w))  # NaN propagates unless asked to raise
        with pytest.raises(ValueError, match="w contains NaN or Inf"):
            fn(w, check_finite=True)
    with pytest.raises(ValueError, match="w contains NaN or Inf"):
        fastpenalty.grad(torch.tensor([float("-inf")]), 0.1, 0.1, check_finite=True)
    raises_leaving([g], ValueError, lambda: fastpenalty.accumulate_(w, g, 0.1, 0.1, check_finite=True),
                   "w contains NaN")
    with pytest.raises(ValueError, match=r"ws\[2\] contains NaN or Inf"):
        fastpenalty.value_many([ok, ok, w], 0.1, 0.1, check_finite=True)
    raises_leaving([g], ValueError,
                   lambda: fastpenalty.accumulate_many_([ok, w], [torch.zeros(3), g], 0.0, 0.0,
                                                        check_finite=True),
                   r"ws\[1\] contains NaN")
    assert fastpenalty.l1_l2(ok, 0.1, 0.1, check_finite=True).item() > 0


def test_cuda_tensors_without_cuda_kernels_get_a_clear_error(monkeypatch):
    from fastpenalty import _cuda_ops

    if not _cuda_ops.is_available():  # this machine: the reason is in the message
        with pytest.raises(RuntimeError, match="CUDA kernels are not available: .+"):
            _cuda.kernels()
    monkeypatch.setitem(sys.modules, "fastpenalty._cuda_ops", None)  # an installation without it
    monkeypatch.delattr(fastpenalty, "_cuda_ops", raising=False)
    with pytest.raises(RuntimeError, match="CUDA kernels are not available in this installation"):
        _cuda.kernels()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_match_cpu():
    w = torch.randn(1000, dtype=torch.float32)
    g = torch.randn(1000)
    try:
        v = fastpenalty.l1_l2(w.cuda(), 0.1, 0.2)
    except RuntimeError as e:
        pytest.skip(f"CUDA kernels unavailable: {e}")
    assert v.device.type == "cuda"
    assert v.item() == pytest.approx(fastpenalty.l1_l2(w, 0.1, 0.2).item(), rel=1e-5)
    gc = g.cuda()
    fastpenalty.accumulate_(w.cuda(), gc, 0.1, 0.2)
    fastpenalty.accumulate_(w, g, 0.1, 0.2)
    torch.testing.assert_close(gc.cpu(), g)
