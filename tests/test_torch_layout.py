"""Tensors that are not contiguous get the right answer: transposed and channels-last tensors
(dense: read in place), slices with gaps (staged through a contiguous copy), and pairs whose
w and g are laid out differently. Elementwise results must equal those of contiguous copies
bit for bit; values may differ only by summation order."""
import pytest
import torch

import fastpenalty

L1, L2 = 0.013, 0.021


def layouts(dtype):
    torch.manual_seed(0)
    return {
        "transposed": torch.randn(9, 13, dtype=dtype).t(),
        "channels_last": torch.randn(2, 3, 5, 4, dtype=dtype).to(memory_format=torch.channels_last),
        "sliced": torch.randn(7, 20, dtype=dtype)[:, 3:17:2],
        "offset": torch.randn(1000, dtype=dtype)[17:],
        "permuted_3d": torch.randn(4, 5, 6, dtype=dtype).permute(2, 0, 1),
        "size_one_dims": torch.randn(5, 1, 3, dtype=dtype).transpose(0, 2),
    }


DTYPES = [torch.float32, torch.float16, torch.float64]
CASES = [(d, name) for d in DTYPES for name in layouts(torch.float32)]


@pytest.mark.parametrize("dtype,name", CASES, ids=[f"{n}-{str(d)[6:]}" for d, n in CASES])
def test_value_and_grad(dtype, name):
    w = layouts(dtype)[name]
    c = w.contiguous()
    rel = 1e-12 if dtype == torch.float64 else 1e-6
    assert fastpenalty.l1_l2(w, L1, L2).item() == pytest.approx(fastpenalty.l1_l2(c, L1, L2).item(), rel=rel)
    out = fastpenalty.grad(w, L1, L2)
    assert out.shape == w.shape and torch.equal(out, fastpenalty.grad(c, L1, L2))
    ws = [w, c, w.detach().requires_grad_()]
    total = fastpenalty.value_many(ws, L1, L2)
    assert total.item() == pytest.approx(3 * fastpenalty.l1_l2(c, L1, L2).item(), rel=rel)
    total.backward()
    assert torch.equal(ws[2].grad, out)


@pytest.mark.parametrize("dtype,name", CASES, ids=[f"{n}-{str(d)[6:]}" for d, n in CASES])
def test_accumulate_any_pairing_of_layouts(dtype, name):
    w = layouts(dtype)[name]
    c = w.contiguous()
    start = torch.randn(w.shape).to(dtype)
    expected = start.clone()
    reference_value = fastpenalty.accumulate_(c, expected, L1, L2)
    targets = {
        "contiguous g": start.clone(),
        "g laid out like w": torch.empty_strided(w.shape, w.stride(), dtype=dtype).copy_(start),
        "strided g": torch.zeros(*w.shape, 2, dtype=dtype)[..., 0].copy_(start),
    }
    for what, g in targets.items():
        value = fastpenalty.accumulate_(w, g, L1, L2)
        assert torch.equal(g, expected), what
        assert value.item() == pytest.approx(reference_value.item(), rel=1e-6), what
    gs = [g.copy_(start) for g in targets.values()]
    fastpenalty.accumulate_many_([w, c, w], gs, L1, L2)
    assert all(torch.equal(g, expected) for g in gs)


def test_strided_weights_are_not_written():
    base = torch.randn(8, 8)
    before = base.clone()
    w = base[::2, 1::3]
    fastpenalty.accumulate_(w, torch.zeros(w.shape), L1, L2)
    fastpenalty.grad(w, L1, L2)
    assert torch.equal(base, before)
