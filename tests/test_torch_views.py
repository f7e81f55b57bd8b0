"""Tensors whose raw memory is not their logical value, and tensors that are not dense.

Negative-bit views (torch._neg_view, z.conj().imag) store the negated values: as w they are
read as their logical values, as g they are written so that their logical value becomes
g + grad(w), on both CPU routes (direct and through the custom ops). Sparse, mkldnn and nested
tensors get one TypeError wording from every function, before anything is written."""
import numpy as np
import pytest
import torch
from test_torch_errors import Dispatcher, raises_leaving

import fastpenalty
from fastpenalty import reference

L1, L2 = 0.1, 0.5
SIZES = (1, 2, 7, 17, 65)


@pytest.fixture(params=["direct", "custom_op"])
def route(request):
    if request.param == "direct":
        yield
    else:
        with Dispatcher():
            yield


def neg_view(values: torch.Tensor) -> torch.Tensor:
    """A negative-bit view whose logical values are `values`."""
    view = torch._neg_view(values.neg())
    assert view.is_neg() and torch.equal(view, values)
    return view


def conj_imag(values: torch.Tensor) -> torch.Tensor:
    """z.conj().imag holding `values` (negative bit, stride 2)."""
    cdtype = torch.complex128 if values.dtype == torch.float64 else torch.complex64
    z = torch.complex(torch.randn_like(values), values.neg()).to(cdtype)
    view = z.conj().imag
    assert view.is_neg() and torch.equal(view, values)
    return view


VIEWS = {"neg_view": neg_view, "conj_imag": conj_imag}


def logical(t):
    return t.detach().resolve_neg().numpy().copy()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_views_as_w_are_read_as_their_values(route, view, n, dtype):
    values = torch.randn(n, dtype=dtype)
    w = VIEWS[view](values)
    x = values.numpy()
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(fastpenalty.grad(w, L1, L2).numpy(), reference.grad(x, L1, L2),
                               rtol=rtol)
    assert fastpenalty.l1_l2(w, L1, L2).item() == pytest.approx(reference.l1_l2(x, L1, L2), rel=rtol)
    assert fastpenalty.value_many([w, values], L1, L2).item() == pytest.approx(
        2 * reference.l1_l2(x, L1, L2), rel=rtol)
    g = torch.ones(n, dtype=dtype)
    fastpenalty.accumulate_(w, g, L1, L2)
    np.testing.assert_allclose(g.numpy(), 1 + reference.grad(x, L1, L2), rtol=rtol)
    gs = [torch.ones(n, dtype=dtype), torch.zeros(n, dtype=dtype)]
    fastpenalty.accumulate_many_([values, w], gs, L1, L2)
    np.testing.assert_allclose(gs[1].numpy(), reference.grad(x, L1, L2), rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_views_as_g_get_their_values_updated(route, view, n, dtype):
    w = torch.randn(n, dtype=dtype)
    start = torch.randn(n, dtype=dtype)
    expected = start.numpy() + reference.grad(w.numpy(), L1, L2)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    g = VIEWS[view](start.clone())
    fastpenalty.accumulate_(w, g, L1, L2)
    np.testing.assert_allclose(logical(g), expected, rtol=rtol, atol=1e-7)
    gs = [torch.zeros(n, dtype=dtype), VIEWS[view](start.clone())]
    fastpenalty.accumulate_many_([w.clone(), w], gs, L1, L2)
    np.testing.assert_allclose(logical(gs[1]), expected, rtol=rtol, atol=1e-7)


def test_backward_through_a_neg_view():
    leaf = torch.randn(9, dtype=torch.float64, requires_grad=True)
    w = torch._neg_view(leaf)
    for value in (fastpenalty.l1_l2(w, L1, L2), fastpenalty.value_many([w], L1, L2)):
        leaf.grad = None
        value.backward()
        expected = -reference.grad(-leaf.detach().numpy(), L1, L2)  # chain rule through -leaf
        np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12)


def _bad_tensors():
    dense = torch.randn(4, 4)
    return {
        "sparse_coo": (dense.to_sparse(), "torch.sparse_coo tensor"),
        "sparse_csr": (dense.to_sparse_csr(), "torch.sparse_csr tensor"),
        "mkldnn": (dense.to_mkldnn(), "torch._mkldnn tensor"),
        "nested": (torch.nested.nested_tensor([torch.randn(4), torch.randn(4)]), "nested tensor"),
        "jagged": (torch.nested.nested_tensor([torch.randn(3), torch.randn(2)],
                                              layout=torch.jagged), "nested tensor"),
    }


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kind", ["sparse_coo", "sparse_csr", "mkldnn", "nested", "jagged"])
def test_layouts_that_are_not_dense_get_one_error_everywhere(route, kind):
    bad, what = _bad_tensors()[kind]
    w, g = torch.randn(4, 4), torch.zeros(4, 4)
    tail = f"is a {what}; only dense \\(strided\\) tensors are supported"
    for call, name in [(lambda: fastpenalty.l1(bad, L1), "w"),
                       (lambda: fastpenalty.grad(bad, L1), "w"),
                       (lambda: fastpenalty.value_many([w, bad], L1), r"ws\[1\]"),
                       (lambda: fastpenalty.accumulate_(bad, g, L1), "w"),
                       (lambda: fastpenalty.accumulate_(w, bad, L1), "g"),
                       (lambda: fastpenalty.accumulate_many_([w, bad], [g, g.clone()], L1),
                        r"ws\[1\]"),
                       (lambda: fastpenalty.accumulate_many_([w, w.clone()], [g, bad], L1),
                        r"gs\[1\]")]:
        raises_leaving([g], TypeError, call, f"^{name} {tail}")


def test_a_neg_view_of_w_as_g_is_an_overlap(route):
    w = torch.randn(6)
    g = torch._neg_view(w)
    before = w.clone()
    with pytest.raises(ValueError, match="share memory"):
        fastpenalty.accumulate_(w, g, L1, L2)
    with pytest.raises(ValueError, match="share memory"):
        fastpenalty.accumulate_many_([w], [g], L1, L2)
    assert torch.equal(w, before)
