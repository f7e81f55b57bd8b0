"""Property test (hypothesis) of the public functions, NumPy and torch: over shapes, views
(offset, transposed, strided, reversed, negative-bit), dtypes and factor types, each call either
matches fastpenalty.reference on the logical values or raises TypeError/ValueError with every g
byte-identical.

Weights include -0.0 (grad's signed zero follows the reference: checked bit for bit) and factors
include values below float32's normal range (1e-40, 1e-46: applied without flushing). Factors
large enough to overflow a float32 value are left to tests/test_core_overflow.py and
tests/test_core_elementwise_bits.py, where the expected infinities are spelled out."""
import numpy as np
import torch
from _tolerances import VALUE_ATOL, VALUE_RTOL, assert_elements_close, assert_value_close
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastpenalty
from fastpenalty import reference

DTYPES = [np.float32, np.float64, np.float16]
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64, np.float16: torch.float16}
OPS = ["l1", "l2", "l1_l2", "grad", "accumulate_", "value_many", "accumulate_many_"]
NUMPY_VIEWS = ["contiguous", "offset", "transposed", "strided", "reversed"]
TORCH_VIEWS = ["contiguous", "offset", "transposed", "strided", "neg"]

finite_weights = st.floats(-100.0, 100.0, allow_subnormal=False)
factor_values = st.one_of(st.just(0.0), st.floats(0.0, 10.0), st.sampled_from([1e-40, 1e-46]))


@st.composite
def factors(draw):
    """(what is passed, its float value or None when it must be refused, the refusal type)."""
    kind = draw(st.sampled_from(["float", "int", "np.float32", "np 0-d", "tensor", "bool",
                                 "np.bool_", "negative", "nan"]))
    x = draw(factor_values)
    if kind == "float":
        return x, x, None
    if kind == "int":
        n = draw(st.integers(0, 3))
        return n, float(n), None
    if kind == "np.float32":
        return np.float32(x), float(np.float32(x)), None
    if kind == "np 0-d":
        return np.array(x), x, None
    if kind == "tensor":
        return torch.tensor(x, dtype=torch.float64), x, None
    if kind == "bool":
        return True, None, TypeError
    if kind == "np.bool_":
        return np.bool_(True), None, TypeError
    if kind == "negative":
        return -(x + 0.5), None, ValueError
    return float("nan"), None, ValueError


def viewed(values: np.ndarray, view: str, kind: str):
    """An array or tensor holding `values` (logically) under the given view."""
    if kind == "numpy":
        if view == "offset":
            holder = np.zeros(values.size + 1, values.dtype)
            holder[1:] = values.reshape(-1)
            return holder[1:].reshape(values.shape)
        if view == "transposed" and values.ndim:  # (ascontiguousarray makes 0-d arrays 1-d)
            return np.ascontiguousarray(values.T).T
        if view == "strided":
            holder = np.zeros(values.shape + (2,), values.dtype)
            holder[..., 0] = values
            return holder[..., 0]
        if view == "reversed" and values.ndim:
            return np.ascontiguousarray(values[::-1])[::-1]
        return values.copy()
    t = torch.from_numpy(values.copy())
    if view == "offset":
        holder = torch.zeros(t.numel() + 1, dtype=t.dtype)
        holder[1:] = t.reshape(-1)
        return holder[1:].reshape(t.shape)
    if view == "transposed":
        dims = tuple(reversed(range(t.dim())))
        return t.permute(dims).contiguous().permute(dims)
    if view == "strided":
        holder = torch.zeros(t.shape + (2,), dtype=t.dtype)
        holder[..., 0] = t
        return holder[..., 0]
    if view == "neg":
        return torch._neg_view(t.neg())
    return t


def logical(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().resolve_neg().numpy().copy()
    return np.array(a)


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["numpy", "torch"]))
    dtype = draw(st.sampled_from(DTYPES))
    op = draw(st.sampled_from(OPS))
    count = draw(st.integers(1, 3)) if op.endswith("many_") or op == "value_many" else 1
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))
    views = NUMPY_VIEWS if kind == "numpy" else TORCH_VIEWS
    ws, gs = [], []
    for _ in range(count):
        values = draw(hnp.arrays(np.float64, shape, elements=finite_weights)).astype(dtype)
        ws.append(viewed(values, draw(st.sampled_from(views)), kind))
        start = draw(hnp.arrays(np.float64, shape, elements=finite_weights)).astype(dtype)
        gs.append(viewed(start, draw(st.sampled_from(views)), kind))
    return kind, dtype, op, ws, gs, draw(factors()), draw(factors())


def run(op, ws, gs, a, b):
    w, g = ws[0], gs[0]
    return {
        "l1": lambda: fastpenalty.l1(w, a),
        "l2": lambda: fastpenalty.l2(w, a),
        "l1_l2": lambda: fastpenalty.l1_l2(w, a, b),
        "grad": lambda: fastpenalty.grad(w, a, b),
        "accumulate_": lambda: fastpenalty.accumulate_(w, g, a, b),
        "value_many": lambda: fastpenalty.value_many(ws, a, b),
        "accumulate_many_": lambda: fastpenalty.accumulate_many_(ws, gs, a, b),
    }[op]()


def expected(op, xs, starts, a, b):
    """(value or None, [expected g or grad] or None) from the oracle on logical values."""
    if op == "l1":
        return reference.l1(xs[0], a), None
    if op == "l2":
        return reference.l2(xs[0], a), None
    if op == "l1_l2":
        return reference.l1_l2(xs[0], a, b), None
    if op == "grad":
        return None, [reference.grad(xs[0], a, b)]
    value = reference.value_many(xs, a, b)
    if op == "value_many":
        return value, None
    return value, [s.astype(np.float64) + reference.grad(x, a, b) for x, s in zip(xs, starts)]


@settings(max_examples=300, deadline=None)
@given(cases())
def test_public_functions_match_the_reference_or_raise_before_writing(case):
    kind, dtype, op, ws, gs, (fa, a, ea), (fb, b, eb) = case
    if op in ("l1", "l2"):
        fb, b, eb = 0.0, 0.0, None  # one factor only
    xs, starts = [logical(w) for w in ws], [logical(g) for g in gs]
    g_bytes = [logical(g).tobytes() for g in gs]
    refused = ea or eb
    try:
        result = run(op, ws, gs, fa, fb)
    except (TypeError, ValueError) as e:
        assert [logical(g).tobytes() for g in gs] == g_bytes, f"{op} wrote g, then raised {e!r}"
        if refused:
            assert isinstance(e, refused) or isinstance(e, (TypeError, ValueError))
            return
        # a refusal not caused by the factors: only NumPy's in-place layout rules
        assert kind == "numpy" and op.startswith("accumulate"), repr(e)
        assert "C-contiguous" in str(e) or "aligned" in str(e), repr(e)
        return
    assert not refused, f"{op} accepted a factor it must refuse: {fa!r}, {fb!r}"
    value, arrays = expected(op, xs, starts, a, b)
    if value is not None:
        vdtype = np.float64 if dtype == np.float64 else np.float32
        assert_value_close(float(result), value, VALUE_RTOL[np.dtype(vdtype)],
                           VALUE_ATOL[np.dtype(vdtype)])
    if op == "grad":
        assert_elements_close(logical(result), arrays[0], dtype)
        assert tuple(np.shape(result)) == xs[0].shape
        zero = arrays[0] == 0
        assert np.array_equal(np.signbit(logical(result))[zero], np.signbit(arrays[0])[zero]), "signed zero"
    elif arrays is not None:
        for g, e, s, x in zip(gs, arrays, starts, xs):
            scale = np.abs(s.astype(np.float64)) + np.abs(reference.grad(x, a, b))
            assert_elements_close(logical(g), e, dtype, scale=scale)
