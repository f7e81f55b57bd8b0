"""Property test of the per-element contract (csrc/common/penalty_math.h): for any weights (NaN,
inf, subnormals, signed zeros included), any g, any valid factors (extreme ones included) and any
size, every ISA's grad and g += grad equal the NumPy emulation in _cases.contract, bit for bit
outside NaN lanes (NaN lanes: NaN in both)."""
import numpy as np
import pytest
from _cases import contract
from _tolerances import DTYPE_IDS, FLOAT_DTYPES

import fastpenalty

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FACTOR = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-3, max_value=1e3),
    st.floats(min_value=0.0, max_value=1.7e308, allow_subnormal=True),
    st.sampled_from([2e38, 1e-46, 2.0**-126, 2.0**100, 2.0**100 * (1 + 2**-52), 1e-40]),
)


def values(dtype, n):
    f32 = np.dtype(dtype) != np.float64
    return st.lists(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True,
                              width=32 if f32 else 64), min_size=n, max_size=n)


def same(a, b):
    a64, b64 = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    nan = np.isnan(b64)
    if not np.array_equal(np.isnan(a64), nan):
        return False
    return np.asarray(a)[~nan].tobytes() == np.asarray(b)[~nan].tobytes()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@settings(max_examples=60)
@given(data=st.data(), l1=FACTOR, l2=FACTOR)
def test_grad_and_accumulate_follow_the_contract(dtype, data, l1, l2):
    n = data.draw(st.integers(min_value=0, max_value=70))
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        w = np.array(data.draw(values(dtype, n)), dtype=np.float64).astype(dtype)
        g = np.array(data.draw(values(dtype, n)), dtype=np.float64).astype(dtype)
        expected_grad = contract(w, l1, l2) if (l1 or l2) else np.zeros_like(w)
        expected_g = contract(w, l1, l2, g) if (l1 or l2) else g.copy()
    previous = fastpenalty.get_isa()
    try:
        for isa in fastpenalty.available_isas():
            fastpenalty.set_isa(isa)
            assert same(fastpenalty.grad(w, l1, l2), expected_grad), (isa, l1, l2)
            out = g.copy()
            fastpenalty.accumulate_(w, out, l1, l2)
            assert same(out, expected_g), (isa, l1, l2)
    finally:
        fastpenalty.set_isa(previous)
