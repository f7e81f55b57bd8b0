"""torch.library.opcheck on every fastpenalty:: op: schema (mutations declared), fake kernels
agreeing with the real ones (including output strides for non-contiguous weights), autograd
registration and AOT dispatch with dynamic shapes."""
import pytest
import torch
from torch.library import opcheck

from fastpenalty.torch import _ops


def f64(*values):
    return torch.tensor(values, dtype=torch.float64)


def scalar(value):
    return torch.tensor(value, dtype=torch.float64)


def weights(dtype, requires_grad=False):
    a = torch.randn(6, 5, dtype=dtype)
    b = torch.randn(4, 7, dtype=dtype).t()  # dense, not contiguous
    c = torch.randn(3, 8, dtype=dtype)[:, ::2]  # not dense: a staging copy
    return [t.requires_grad_(requires_grad) for t in (a, b, c)]


def samples(dtype):
    ws = weights(dtype, requires_grad=dtype == torch.float64)
    gs = [torch.zeros_like(w, requires_grad=False) for w in ws]
    frozen = [w.detach() for w in ws]
    yield "value", _ops.value, (ws[0], scalar(0.1), scalar(0.2), False)
    yield "value_transposed", _ops.value, (ws[1], scalar(0.0), scalar(0.2), True)
    yield "value_many", _ops.value_many, (ws, f64(0.1, 0.0, 0.3), f64(0.2), False)
    yield "grad", _ops.grad, (ws[1], scalar(0.1), scalar(0.2), None, False)
    yield "grad_scaled", _ops.grad, (ws[2], scalar(0.1), scalar(0.2), scalar(-2.0), False)
    yield "grad_many", _ops.grad_many, (ws, f64(0.1), f64(0.2, 0.3, 0.4), scalar(1.5))
    yield "accumulate_", _ops.accumulate_, (frozen[1], gs[1], scalar(0.1), scalar(0.2), False)
    yield "accumulate_many_", _ops.accumulate_many_, (frozen, gs, f64(0.1), f64(0.2), False)


# every op in float64 (autograd checked too); bfloat16 where the output dtype depends on it
CASES = [(torch.float64, name) for name, _, _ in samples(torch.float64)] + [
    (torch.bfloat16, name) for name in ("value", "value_many", "grad", "accumulate_many_")]
OPS = {"value", "value_many", "grad", "grad_many", "accumulate_", "accumulate_many_"}


@pytest.mark.parametrize("dtype,name", CASES, ids=[f"{n}-{str(d)[6:]}" for d, n in CASES])
def test_opcheck(dtype, name):
    torch.manual_seed(0)
    op, args = next((op, args) for n, op, args in samples(dtype) if n == name)
    opcheck(op, args)


def test_every_op_is_covered():
    registered = {name for name in OPS if hasattr(torch.ops.fastpenalty, name)}
    covered = {name.split("_transposed")[0].split("_scaled")[0] for _, name in CASES}
    assert registered == OPS == covered


@pytest.mark.parametrize("op", ["value", "value_many", "grad", "grad_many", "accumulate_",
                                "accumulate_many_"])
def test_each_op_has_a_kernel_per_device(op):
    # routing by device is the dispatcher's: a CPU and a CUDA kernel, and the fake one for Meta
    for key in ("CPU", "CUDA", "Meta"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"fastpenalty::{op}", key), key
