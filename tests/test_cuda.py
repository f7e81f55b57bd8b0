"""The CUDA kernels (fastpenalty._cuda, driven through fastpenalty._cuda_ops) against the float64
oracle: value, accumulate, grad and grad_many in every dtype at odd sizes, unaligned views, lists of 1000+ tensors with empty ones,
a tensor past 2^31 elements, zero-factor switches, determinism, launch counts, no host sync and
CUDA-graph capture.

Tests that need a GPU are skipped where torch sees none. The host side of the module (import,
availability report, argument checks that raise before any launch) is tested
everywhere the module is built."""
import os

import ml_dtypes
import numpy as np
import pytest
import torch

import fastpenalty
from fastpenalty import _cuda_ops, reference
from _tolerances import (
    BFLOAT16,
    FLOAT16,
    FLOAT32,
    FLOAT64,
    FLOAT_DTYPES,
    as_float64,
    assert_elements_close,
    assert_value_close,
    result_is_fp32,
    value_rtol,
)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TORCH_DTYPES = {FLOAT32: torch.float32, FLOAT64: torch.float64, FLOAT16: torch.float16, BFLOAT16: torch.bfloat16}
NUMPY_DTYPES = {t: n for n, t in TORCH_DTYPES.items()}
FACTOR_PAIRS = [(0.013, 0.021), (0.5, 0.0), (0.0, 1.5), (0.0, 0.0)]


def cuda_ext():
    return pytest.importorskip("fastpenalty._cuda", reason="fastpenalty was built without CUDA")


def to_cuda(a):
    a = np.ascontiguousarray(a)
    if a.dtype == BFLOAT16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).cuda()
    return torch.from_numpy(a.copy()).cuda()


def to_numpy(t):
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def factors(values, count=1):
    """float64 factors on the GPU: one for all tensors, or one per tensor."""
    if isinstance(values, (list, tuple)):
        assert len(values) == count
    return torch.tensor(values, dtype=torch.float64, device="cuda").reshape(-1)


def per_tensor(f, n):
    return list(f) if isinstance(f, (list, tuple)) else [f] * n


def check_value_many(ws_np, l1, l2):
    ws = [to_cuda(w) for w in ws_np]
    before = [w.clone() for w in ws]
    v = _cuda_ops.value_many(ws, factors(l1, len(ws)), factors(l2, len(ws)))
    dtypes = [w.dtype for w in ws_np]
    assert v.shape == () and v.device.type == "cuda"
    assert v.dtype == (torch.float32 if result_is_fp32(dtypes) else torch.float64)
    assert_value_close(v.item(), reference.value_many(ws_np, l1, l2), value_rtol(dtypes))
    assert all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(ws, before) if a.numel())
    return v


def check_accumulate_many(ws_np, gs_np, l1, l2, ws=None, gs=None):
    """gs += grad(ws) on the GPU against the oracle; ws/gs may be given as (views of) CUDA tensors
    holding ws_np/gs_np."""
    ws = [to_cuda(w) for w in ws_np] if ws is None else ws
    gs = [to_cuda(g) for g in gs_np] if gs is None else gs
    gs_oracle = [g.copy() for g in gs_np]
    expected = reference.accumulate_many_(ws_np, gs_oracle, l1, l2)
    v = _cuda_ops.accumulate_many_(ws, gs, factors(l1, len(ws)), factors(l2, len(ws)))
    dtypes = [w.dtype for w in ws_np]
    assert v.shape == () and v.dtype == (torch.float32 if result_is_fp32(dtypes) else torch.float64)
    assert_value_close(v.item(), expected, value_rtol(dtypes))
    for w, g_before, g, g_oracle, a, b in zip(ws_np, gs_np, gs, gs_oracle, per_tensor(l1, len(ws)),
                                              per_tensor(l2, len(ws))):
        got = to_numpy(g)
        if a == 0.0 and b == 0.0:
            assert got.tobytes() == g_before.tobytes(), "both factors 0 must leave g untouched"
            continue
        scale = np.abs(as_float64(g_before)) + np.abs(as_float64(reference.grad(w, a, b)))
        assert_elements_close(got, g_oracle, w.dtype, scale=scale)
    return v


def check_grad_many(ws_np, l1, l2, ws=None):
    """[grad(w) for w in ws] in one pass, against the oracle; ws may be given as (views of) CUDA
    tensors holding ws_np."""
    ws = [to_cuda(w) for w in ws_np] if ws is None else ws
    outs = _cuda_ops.grad_many(ws, factors(l1, len(ws)), factors(l2, len(ws)))
    assert len(outs) == len(ws)
    for w_np, w, out, a, b in zip(ws_np, ws, outs, per_tensor(l1, len(ws)), per_tensor(l2, len(ws))):
        assert out.dtype == w.dtype and out.shape == w.shape and out.is_contiguous()
        assert_elements_close(to_numpy(out), reference.grad(w_np, a, b), w_np.dtype)
    return outs


# ---- host side: runs wherever the module is built ------------------------------------------------


def test_module_imports_and_reports_its_runtime():
    ext = cuda_ext()
    assert isinstance(ext.available(), bool)
    assert ext.available() == (ext.device_count() > 0)
    assert ext.runtime_version() >= 12000
    assert ext.CHUNK_BYTES > 0 and ext.CHUNK_BYTES % 16 == 0 and ext.SLOTS >= 100
    assert "80" in ext.ARCHITECTURES and "90" in ext.ARCHITECTURES
    if not ext.available():
        assert ext.device_query_error() != ""
        assert not _cuda_ops.is_available() and _cuda_ops.unavailable_reason() != ""


@pytest.mark.skipif(torch.cuda.is_available() or os.path.exists("/dev/nvidiactl"), reason="a GPU is present")
def test_unavailable_without_a_gpu():
    ext = cuda_ext()
    assert ext.available() is False
    assert ext.device_count() == 0
    assert _cuda_ops.is_available() is False


def test_cuda_ops_rejects_cpu_tensors_before_touching_the_gpu():
    w = torch.ones(4)
    one = torch.ones(1, dtype=torch.float64)
    with pytest.raises(ValueError, match="cpu"):
        _cuda_ops.value_many([w], one, one)
    with pytest.raises(ValueError, match="cpu"):
        _cuda_ops.accumulate_many_([w], [torch.zeros(4)], one, one)
    with pytest.raises(ValueError, match="cpu"):
        _cuda_ops.grad(w, one, one)


def launch_args(**changes):
    args = dict(mode=1, w=[0x10000, 0x20000], g=[0x30000, 0x40000], n=[4, 3], dtype=[0, 2], l1s=0x50000,
                l1_count=1, l2s=0x60000, l2_count=2, scratch=0x70000, scratch_capacity=1 << 20, out=0x80000,
                out_f64=False, device=0, stream=0)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "changes, match",
    [
        (dict(mode=3), "mode must be"),
        (dict(l1_count=3), "l1s has 3 entries for 2 tensors"),
        (dict(l2_count=0), "l2s has 0 entries"),
        (dict(w=[], g=[], n=[], dtype=[]), "empty tensor list"),
        (dict(out=0), "output"),
        (dict(scratch=0), "scratch"),
        (dict(l1s=0), "l1s"),
        (dict(dtype=[0, 7]), "tensor 1: unsupported dtype code 7"),
        (dict(dtype=[-1, 0]), "tensor 0: unsupported dtype code -1"),
        (dict(n=[4]), "different lengths"),
        (dict(g=[0x30000]), "2 weights but 1 gradients"),
        (dict(mode=0), "a value pass takes no gradients"),
        (dict(g=[0x10008, 0x40000]), "tensor 0: weight and gradient memory overlap"),
        (dict(w=[0x10000, 0]), "tensor 1: null weight"),
        (dict(g=[0x30000, 0]), "tensor 1: null gradient"),
        (dict(w=[0x10002, 0x20000]), "tensor 0: weight pointer not aligned"),
        (dict(g=[0x30000, 0x40001]), "tensor 1: gradient pointer not aligned"),
        (dict(n=[-1, 3]), "tensor 0: negative size"),
    ],
)
def test_launch_checks_raise_before_any_cuda_call(changes, match):
    """Every check runs before the device is touched: here there is none, so any CUDA call would
    raise RuntimeError instead of the ValueError expected."""
    ext = cuda_ext()
    with pytest.raises(ValueError, match=match):
        ext.multi_tensor(**launch_args(**changes))


def test_grad_launch_checks_raise_before_any_cuda_call():
    ext = cuda_ext()
    ok = dict(w=0x10000, out=0x20000, n=16, dtype=0, l1=0x30000, l2=0x40000, device=0, stream=0)
    for changes, match in [(dict(dtype=9), "dtype code 9"), (dict(n=0), "size"), (dict(out=0x10008), "overlap"),
                           (dict(l2=0), "float64"), (dict(w=0x10002), "weight pointer")]:
        with pytest.raises(ValueError, match=match):
            ext.grad(**{**ok, **changes})


# ---- every op and dtype at odd sizes -------------------------------------------------------------


@gpu
def test_value_matches_reference(float_dtype, odd_size, weights):
    w = weights(odd_size, float_dtype)
    for l1, l2 in FACTOR_PAIRS:
        check_value_many([w], l1, l2)


@gpu
def test_accumulate_matches_reference(float_dtype, odd_size, weights):
    w, g = weights(odd_size, float_dtype), weights(odd_size, float_dtype, scale=0.1)
    for l1, l2 in FACTOR_PAIRS:
        check_accumulate_many([w], [g], l1, l2)


@gpu
def test_grad_matches_reference(float_dtype, odd_size, weights):
    w_np = weights(odd_size, float_dtype)
    w = to_cuda(w_np)
    for l1, l2 in FACTOR_PAIRS:
        out = _cuda_ops.grad(w, factors(l1), factors(l2).reshape(()))
        assert out.dtype == w.dtype and out.shape == w.shape and out.is_contiguous()
        assert_elements_close(to_numpy(out), reference.grad(w_np, l1, l2), float_dtype)
        check_grad_many([w_np], l1, l2, ws=[w])


@gpu
def test_mixed_dtype_lists_with_per_tensor_factors(odd_size, weights):
    ws = [weights(odd_size, dt) for dt in FLOAT_DTYPES] + [weights((3, 5), FLOAT32), weights(0, FLOAT16)]
    gs = [weights(w.shape, w.dtype, scale=0.1) for w in ws]
    l1s = [0.0, 0.013, 0.5, 0.0, 1e-3, 2.0]
    l2s = [0.021, 0.0, 1.5, 0.0, 0.25, 0.0]
    check_value_many(ws, l1s, l2s)
    check_value_many(ws, 0.013, 0.021)
    check_accumulate_many(ws, gs, l1s, l2s)
    check_grad_many(ws, l1s, l2s)
    check_value_many([w for w in ws if w.dtype == FLOAT64], 0.3, 0.7)


@gpu
def test_empty_lists_and_empty_tensors_give_zero():
    one = factors(0.5)
    v = _cuda_ops.value_many([], one, one)
    assert v.item() == 0.0 and v.device.type == "cuda" and v.dtype == torch.float32
    empties = [torch.empty(0, device="cuda"), torch.empty((3, 0), device="cuda", dtype=torch.float64)]
    assert _cuda_ops.value_many(empties, one, one).item() == 0.0
    gs = [torch.empty_like(e) for e in empties]
    assert _cuda_ops.accumulate_many_(empties, gs, one, one).item() == 0.0
    assert _cuda_ops.grad(empties[0], one, one).shape == (0,)
    assert [o.shape for o in _cuda_ops.grad_many(empties, one, one)] == [(0,), (3, 0)]
    assert _cuda_ops.grad_many([], one, one) == []


def same_bits_or_both_nan(got, want):
    """Bit-identical arrays, except that a NaN may carry another payload (GPU arithmetic need not
    propagate payloads as x86 does); NaN stays NaN in the same places."""
    got_nan, want_nan = np.isnan(as_float64(got)), np.isnan(as_float64(want))
    assert np.array_equal(got_nan, want_nan), np.flatnonzero(got_nan != want_nan)[:5]
    unsigned = {2: np.uint16, 4: np.uint32, 8: np.uint64}[got.itemsize]
    differ = (got.view(unsigned) != want.view(unsigned)) & ~want_nan
    assert not differ.any(), [(i, got[i], want[i]) for i in np.flatnonzero(differ)[:5]]


@gpu
@pytest.mark.parametrize("l1, l2", FACTOR_PAIRS + [(1e-30, 3e38)])
def test_elements_bit_identical_to_the_cpu_kernels(float_dtype, isa, l1, l2, weights):
    """The CPU kernels are an exact oracle: same per-element rounding and signed zeros for grad,
    grad_many and accumulate_many_ (both factors 0: g untouched), specials included."""
    n = 4099
    w_np = weights(n, float_dtype)
    w_np[9:14] = np.array([np.inf, -np.inf, 0.0, -0.0, np.nan], dtype=np.float64).astype(w_np.dtype)
    g_np = weights(n, float_dtype, scale=0.1)
    g_np[::7] = -0.0
    w, g = to_cuda(w_np), to_cuda(g_np)
    cpu_grad = fastpenalty.grad(w_np, l1, l2)
    same_bits_or_both_nan(to_numpy(_cuda_ops.grad(w, factors(l1).reshape(()), factors(l2).reshape(()))), cpu_grad)
    same_bits_or_both_nan(to_numpy(_cuda_ops.grad_many([w], factors(l1), factors(l2))[0]), cpu_grad)
    cpu_g = g_np.copy()
    fastpenalty.accumulate_(w_np, cpu_g, l1, l2)
    _cuda_ops.accumulate_many_([w], [g], factors(l1), factors(l2))
    same_bits_or_both_nan(to_numpy(g), cpu_g)


# ---- addresses, sizes and counts the vector path cannot take -------------------------------------


@gpu
@pytest.mark.parametrize("n", [1, 33, 65537, 1000003])
@pytest.mark.parametrize("w_offset, g_offset", [(1, 0), (0, 1), (1, 1), (3, 5)])
def test_unaligned_views(float_dtype, n, w_offset, g_offset, weights):
    w_base = weights(n + w_offset, float_dtype)
    g_base = weights(n + g_offset, float_dtype, scale=0.1)
    w_np, g_np = w_base[w_offset:], g_base[g_offset:]
    w = to_cuda(w_base)[w_offset:]
    g_dev = to_cuda(g_base)
    g = g_dev[g_offset:]
    assert w.data_ptr() % 16 != 0 or g.data_ptr() % 16 != 0
    assert_value_close(_cuda_ops.value_many([w], factors(0.013), factors(0.021)).item(),
                       reference.l1_l2(w_np, 0.013, 0.021), value_rtol([float_dtype]))
    check_accumulate_many([w_np], [g_np], 0.013, 0.021, ws=[w], gs=[g])
    assert to_numpy(g_dev[:g_offset]).tobytes() == g_base[:g_offset].tobytes(), "wrote before the view"
    out = _cuda_ops.grad(w, factors(0.013), factors(0.021))
    assert_elements_close(to_numpy(out), reference.grad(w_np, 0.013, 0.021), float_dtype)
    check_grad_many([w_np], 0.013, 0.021, ws=[w])


@gpu
def test_thousand_tensors_with_empty_ones(rng, weights):
    sizes = rng.integers(0, 400, size=1200)
    sizes[::7] = 0
    sizes[5] = 200003
    dtypes = [FLOAT_DTYPES[i % 4] for i in range(len(sizes))]
    ws = [weights(int(n), dt) for n, dt in zip(sizes, dtypes)]
    gs = [weights(int(n), dt, scale=0.1) for n, dt in zip(sizes, dtypes)]
    l1s = [float(x) for x in rng.random(len(ws)) * (rng.random(len(ws)) < 0.8)]
    l2s = [float(x) for x in rng.random(len(ws)) * (rng.random(len(ws)) < 0.8)]
    check_value_many(ws, l1s, l2s)
    check_accumulate_many(ws, gs, l1s, l2s)
    check_grad_many(ws, l1s, l2s)
    same = [weights(int(n), FLOAT32) for n in sizes]
    check_value_many(same, 0.01, 0.02)


@gpu
def test_one_launch_per_slice_of_tensors(weights):
    from torch.profiler import ProfilerActivity, profile

    ws = [to_cuda(weights(n % 50, FLOAT32)) for n in range(1500)]
    gs = [torch.zeros_like(w) for w in ws]
    l1s, l2s = factors(0.01), factors([0.5] * len(ws), len(ws))
    _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)  # kernels loaded: steady state
    _cuda_ops.value_many(ws, l1s, l2s)
    torch.cuda.synchronize()
    _cuda_ops.grad_many(ws, l1s, l2s)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _cuda_ops.value_many(ws, l1s, l2s)
        _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)
        _cuda_ops.grad_many(ws, l1s, l2s)
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    if not kernels:
        pytest.skip("the profiler recorded no CUDA activity on this machine")
    slices = -(-len(ws) // cuda_ext().SLOTS)
    assert slices > 1  # the fixed partition of a long list into several launches
    assert sum("multi_tensor_pass" in k for k in kernels) == 3 * slices, kernels
    assert sum("sum_partials" in k for k in kernels) == 2, kernels


@gpu
def test_tensor_past_two_to_the_31_elements():
    """2^31 + 4099 fp16 elements holding (i % 7) - 3: every partial sum is an exact integer, so the
    value is exact, and an index that wrapped at 2^31 or 2^32 would read the wrong residues."""
    n = (1 << 31) + 4099
    if torch.cuda.get_device_properties(0).total_memory < 40 * (1 << 30):
        pytest.skip("needs 40 GiB of GPU memory")
    step = 1 << 27

    def pattern(start, stop):
        return (torch.arange(start, stop, device="cuda") % 7 - 3).to(torch.float16)

    def exact_value(first, count, l1, l2):
        """The value over elements first .. first + count - 1 of the pattern."""
        residues = np.arange(7)
        offsets = (residues - first) % 7  # the first i >= 0 with (first + i) % 7 == residue
        counts = np.maximum(0, (count - offsets + 6) // 7)
        mags = np.abs(residues - 3)
        return l1 * float((counts * mags).sum()) + l2 * float((counts * mags**2).sum())

    w = torch.empty(n, dtype=torch.float16, device="cuda")
    for start in range(0, n, step):
        w[start:min(n, start + step)] = pattern(start, min(n, start + step))
    l1, l2 = 0.5, 0.25
    v = _cuda_ops.value_many([w], factors(l1), factors(l2))
    assert v.item() == float(np.float32(exact_value(0, n, l1, l2)))
    tail = w[1:]  # 2^31 + 4098 elements, not 16-byte aligned: the element-wise path
    assert _cuda_ops.value_many([tail], factors(l1), factors(l2)).item() == float(
        np.float32(exact_value(1, n - 1, l1, l2)))

    def expected_grad(start, stop):  # 0.5 * sign(w) + 0.5 * w, exact in fp16 for these w
        x = pattern(start, stop).float()
        return (0.5 * torch.sign(x) + 0.5 * x).to(torch.float16)

    g = torch.zeros_like(w)
    v = _cuda_ops.accumulate_many_([w], [g], factors(l1), factors(l2))
    assert v.item() == float(np.float32(exact_value(0, n, l1, l2)))
    for start in range(0, n, step):
        assert torch.equal(g[start:min(n, start + step)], expected_grad(start, min(n, start + step))), start
    del g
    out = _cuda_ops.grad(tail, factors(l1), factors(l2))
    for start in range(0, n - 1, step):
        stop = min(n - 1, start + step)
        assert torch.equal(out[start:stop], expected_grad(start + 1, stop + 1)), start


# ---- factors equal to zero, NaN and Inf ----------------------------------------------------------


@gpu
@pytest.mark.parametrize("l1, l2", FACTOR_PAIRS + [(1.0, 1.0)])
def test_special_values_follow_the_reference(float_dtype, l1, l2):
    special = np.array([np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0, np.nan], dtype=np.float64)
    for values in (special[[0, 2, 4]], special[[1, 3, 5]], special):
        w_np = values.astype(float_dtype)
        check_value_many([w_np], l1, l2)
        check_accumulate_many([w_np], [np.zeros_like(w_np)], l1, l2)
        out = _cuda_ops.grad(to_cuda(w_np), factors(l1), factors(l2))
        assert_elements_close(to_numpy(out), reference.grad(w_np, l1, l2), float_dtype)
        check_grad_many([w_np], l1, l2)


@gpu
def test_zero_factors_leave_g_untouched_and_grad_zero(float_dtype, weights):
    w_np = weights(4099, float_dtype)
    w_np[::3] = np.nan
    g = to_cuda(weights(4099, float_dtype))
    before = g.clone()
    zero = factors(0.0)
    assert _cuda_ops.accumulate_many_([to_cuda(w_np)], [g], zero, zero).item() == 0.0
    assert torch.equal(g.view(torch.uint8), before.view(torch.uint8))
    for out in (_cuda_ops.grad(to_cuda(w_np), zero, zero), _cuda_ops.grad_many([to_cuda(w_np)], zero, zero)[0]):
        assert torch.equal(out, torch.zeros_like(out)) and not torch.signbit(out.float()).any()


# ---- determinism, synchronization, graphs --------------------------------------------------------


def mixed_model(weights):
    sizes = [1000003, 4097, 0, 77777, 3000001, 9, 262145]
    return [to_cuda(weights(n, FLOAT_DTYPES[i % 4])) for i, n in enumerate(sizes)]


@gpu
def test_values_are_bit_identical_over_repeated_runs(weights):
    ws = mixed_model(weights)
    l1s = factors([0.01 * (i + 1) for i in range(len(ws))], len(ws))
    l2s = factors(0.3)
    values = torch.stack([_cuda_ops.value_many(ws, l1s, l2s) for _ in range(20)])
    assert torch.equal(values, values[:1].expand_as(values)), values
    g0 = [to_cuda(weights(w.shape, NUMPY_DTYPES[w.dtype], scale=0.1)) for w in ws]
    results = []
    for _ in range(5):
        gs = [g.clone() for g in g0]
        v = _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)
        results.append((v, gs))
    for v, gs in results[1:]:
        assert torch.equal(v, results[0][0])
        assert all(torch.equal(a.view(torch.uint8), b.view(torch.uint8))
                   for a, b in zip(gs, results[0][1]) if a.numel())


@gpu
def test_no_host_synchronization(weights):
    ws = [to_cuda(weights(n, FLOAT32)) for n in (1000, 0, 65, 70001)]
    gs = [torch.zeros_like(w) for w in ws]
    l1s, l2s = factors([0.1, 0.2, 0.3, 0.4], 4), factors(0.5)
    l1, l2 = factors(0.1).reshape(()), factors(0.5).reshape(())
    fresh = [to_cuda(weights(n, FLOAT16)) for n in (7, 300)]  # first call on them under the check
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        results = []
        for _ in range(2):
            results.append(_cuda_ops.value_many(ws, l1s, l2s))
            results.append(_cuda_ops.accumulate_many_(ws, gs, l1s, l2s))
            results.append(_cuda_ops.grad(ws[0], l1, l2))
            results.extend(_cuda_ops.grad_many(ws, l1s, l2s))
        results.append(_cuda_ops.value_many(fresh, l1s[:2], l2s))
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    per_round = (len(results) - 1) // 2
    assert torch.isfinite(results[0]).item() and torch.equal(results[0], results[per_round])


@gpu
def test_cuda_graph_capture_of_an_accumulate_step(weights):
    ws_np = [weights(n, FLOAT32) for n in (1000, 17, 0, 70001)]
    ws = [to_cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    l1s, l2s = factors([0.01, 0.02, 0.03, 0.04], 4), factors(0.5)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up on the capture stream
        _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        total = _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)

    # many other lists afterwards: nothing they do may change what the graph reads
    for n in range(100):
        _cuda_ops.value_many([torch.ones(n + 1, device="cuda")], l2s, l2s)

    def replay_and_check(l1_values, l2_value, rounds):
        for g in gs:
            g.zero_()
        l1s.copy_(torch.tensor(l1_values, dtype=torch.float64))
        l2s.fill_(l2_value)
        for _ in range(rounds):
            graph.replay()
        torch.cuda.synchronize()
        expected = [np.zeros_like(w) for w in ws_np]
        for _ in range(rounds):
            value = reference.accumulate_many_(ws_np, expected, l1_values, l2_value)
        assert_value_close(total.item(), value, value_rtol([FLOAT32]))
        for w, g, e in zip(ws_np, gs, expected):
            assert_elements_close(to_numpy(g), e, FLOAT32, scale=np.abs(e) + 1e-30)

    replay_and_check([0.01, 0.02, 0.03, 0.04], 0.5, 1)
    replay_and_check([0.0, 1.0, 0.0, 2.0], 0.0, 2)  # new factors, no recapture


@gpu
def test_cuda_graph_capture_of_a_first_call(weights):
    """The first call on a list happens inside the capture: its tables are in the graph's kernel
    parameters, so replays after other lists have come and gone still see them."""
    ws_np = [weights(n, BFLOAT16) for n in (5, 4096, 33)]
    ws = [to_cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    quarter, eighth = factors(0.25), factors(0.125)  # made outside: a pageable copy cannot be captured
    _cuda_ops.value_many([torch.ones(3, device="cuda")], quarter, eighth)  # kernels loaded before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        total = _cuda_ops.accumulate_many_(ws, gs, quarter, eighth)
    for n in range(100):  # other lists come and go
        _cuda_ops.value_many([torch.ones(n + 1, device="cuda")], quarter, eighth)
    for g in gs:
        g.zero_()
    graph.replay()
    torch.cuda.synchronize()
    oracle = [np.zeros_like(w) for w in ws_np]
    value = reference.accumulate_many_(ws_np, oracle, 0.25, 0.125)
    assert_value_close(total.item(), value, value_rtol([BFLOAT16]))
    for g, e in zip(gs, oracle):
        assert_elements_close(to_numpy(g), e, BFLOAT16)


@gpu
def test_eager_call_after_a_capture_that_saw_the_list_first(weights):
    """Regression (issue 11): a table built during capture was cached and handed to the next eager
    call before any replay had copied it. The eager call must be right without a replay."""
    ws_np = [weights(n, FLOAT32) for n in (1000, 17, 70001)]
    ws = [to_cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    l1s, l2s = factors([0.01, 0.02, 0.03], 3), factors(0.5)
    _cuda_ops.value_many([torch.ones(3, device="cuda")], l2s, l2s)  # kernels loaded before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)
    for g in gs:
        g.zero_()
    value = _cuda_ops.accumulate_many_(ws, gs, l1s, l2s)
    expected = [np.zeros_like(w) for w in ws_np]
    assert_value_close(value.item(), reference.accumulate_many_(ws_np, expected, [0.01, 0.02, 0.03], 0.5),
                       value_rtol([FLOAT32]))
    for g, e in zip(gs, expected):
        assert_elements_close(to_numpy(g), e, FLOAT32)


# ---- through the public API ----------------------------------------------------------------------


@gpu
def test_public_api_runs_these_kernels(weights):
    w_np = weights(4099, FLOAT32)
    w = to_cuda(w_np).requires_grad_()
    v = fastpenalty.l1_l2(w, 0.01, 0.02)
    assert v.device.type == "cuda"
    assert_value_close(v.item(), reference.l1_l2(w_np, 0.01, 0.02), value_rtol([FLOAT32]))
    v.backward()
    assert_elements_close(to_numpy(w.grad), reference.grad(w_np, 0.01, 0.02), FLOAT32)
