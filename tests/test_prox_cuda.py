"""The proximal step on CUDA (fastpenalty._cuda_ops.prox_many_): the new weights bit for bit against
the CPU kernels (_core.prox_many), the zero count, the value equal to _cuda_ops.value_many of the
result, per-tensor and broadcast factors, lists longer than one launch, refused device factors
(nothing written, NaN and -1) and tensors that share memory (an error before any launch).

Needs a GPU; the launchers and kernels also run on the CPU in tests/cuda_emulation."""
import numpy as np
import pytest
import torch

from fastpenalty import _core, _dtypes
from _cases import prox_contract
from _tolerances import FLOAT_DTYPES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def ops():
    pytest.importorskip("fastpenalty._cuda", reason="fastpenalty was built without CUDA")
    from fastpenalty import _cuda_ops

    return _cuda_ops


TORCH_DTYPES = dict(zip(FLOAT_DTYPES, (torch.float32, torch.float64, torch.float16, torch.bfloat16)))
INTS = {2: (np.int16, torch.int16), 4: (np.int32, torch.int32), 8: (np.int64, torch.int64)}


def to_cuda(a):
    """a on the GPU with its bits as they are (NaN payloads included)."""
    return torch.from_numpy(a.view(INTS[a.itemsize][0]).copy()).view(TORCH_DTYPES[a.dtype]).cuda()


def to_numpy(t, dtype):
    return t.detach().cpu().view(INTS[t.element_size()][1]).numpy().view(dtype)


def weights(rng, n, dtype):
    x = rng.random(n) * 4.0 - 2.0
    x[:: 29] = 0.0
    x[1:: 58] = -0.0
    x[3:: 101] = np.nan
    x[5:: 103] = np.inf
    return x.astype(dtype)


def f64(values):
    return torch.tensor(values, dtype=torch.float64, device="cuda")


CASES = [(0.5, 0.3, 0.0), (0.5, 0.0, 0.25), (0.1, 2.0, 0.7), (1.0, 1e-40, 0.3), (1e-3, 1e35, 0.0),
         (1.0, 0.0, 40.0), (0.0, 1.0, 1.0), (0.5, 0.0, 0.0)]


@pytest.mark.parametrize("lr, l1, l2", CASES)
def test_cuda_prox_matches_cpu_bits(lr, l1, l2):
    cuda = ops()
    rng = np.random.default_rng(0)
    host = [weights(rng, n, FLOAT_DTYPES[i % 4]) for i, n in enumerate((1, 7, 33, 8193, 0, 65537, 16385, 3))]
    dev = [to_cuda(w) for w in host]
    value, zeros = cuda.prox_many_(dev, f64([lr]), f64([l1]), f64([l2]))
    for w, d in zip(host, dev):
        expected = prox_contract(w, lr, l1, l2)
        assert to_numpy(d, w.dtype).tobytes() == expected.tobytes()
    codes = [_dtypes.numpy_code(w.dtype) for w in host]
    _, cpu_zeros = _core.prox_many([w.ctypes.data for w in host], [w.size for w in host], codes, [lr], [l1], [l2])
    assert int(zeros) == cpu_zeros
    again = cuda.value_many(dev, f64([l1]), f64([l2]))
    assert value.dtype == torch.float32 and zeros.dtype == torch.int64
    assert torch.equal(value, again) or (value.isnan() and again.isnan())


def test_cuda_prox_per_tensor_factors_over_several_launches():
    cuda = ops()
    rng = np.random.default_rng(1)
    count = 2 * cuda._load().SLOTS + 9
    host = [weights(rng, int(rng.integers(0, 50)), FLOAT_DTYPES[i % 4]) for i in range(count)]
    lrs, l1s, l2s = rng.random(count), rng.random(count), rng.random(count)
    dev = [to_cuda(w) for w in host]
    value, zeros = cuda.prox_many_(dev, f64(lrs), f64(l1s), f64(l2s))
    for k, (w, d) in enumerate(zip(host, dev)):
        assert to_numpy(d, w.dtype).tobytes() == prox_contract(w, lrs[k], l1s[k], l2s[k]).tobytes()
    assert int(zeros) == sum(int(np.count_nonzero(to_numpy(d, w.dtype) == 0)) for w, d in zip(host, dev))


def test_cuda_prox_refuses_invalid_device_factors_without_writing():
    cuda = ops()
    dev = [torch.linspace(-1, 1, 1000, device="cuda"), torch.linspace(-1, 1, 77, device="cuda", dtype=torch.float64)]
    before = [d.clone() for d in dev]
    for lrs in ([0.1, -1.0], [0.1, float("nan")], [1e200, 0.1]):
        value, zeros = cuda.prox_many_(dev, f64(lrs), f64([1e200]), f64([0.1]))
        assert value.isnan() and int(zeros) == -1
        assert all(torch.equal(a, b) for a, b in zip(dev, before))


def test_cuda_prox_rejects_overlapping_tensors_before_launching():
    cuda = ops()
    base = torch.linspace(-1, 1, 100, device="cuda")
    before = base.clone()
    with pytest.raises(ValueError, match="overlaps"):
        cuda.prox_many_([base[:60], base[40:]], f64([0.1]), f64([0.5]), f64([0.5]))
    assert torch.equal(base, before)
