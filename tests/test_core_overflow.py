"""Sums that do not overflow (or lose their digits to underflow) where the exact value is finite in
the output dtype: a block whose fast fp32 (fp64) sums overflow or underflow is redone in double
(float64: at a power-of-two scale). NaN and inf in w still propagate; a value beyond the output
dtype's range is inf."""
import math
from fractions import Fraction

import numpy as np
import pytest
from _tolerances import BFLOAT16, VALUE_RTOL, assert_value_close

import fastpenalty

CHUNK = fastpenalty._core.CHUNK


def exact(w, l1, l2, dtype):
    """l1 * sum|w| + l2 * sum w^2 in exact rational arithmetic (the float64 oracle overflows and
    underflows here itself), rounded as the contract returns it: fp32 unless the input is fp64."""
    x = [Fraction(float(v)) for v in np.asarray(w).astype(np.float64).ravel()]
    v = float(Fraction(l1) * sum(abs(t) for t in x) + Fraction(l2) * sum(t * t for t in x))
    return v if np.dtype(dtype) == np.float64 else float(np.float32(v))


CASES = {  # name: (dtype, weight magnitude, l1, l2)
    "fp32_squares_overflow": (np.float32, 1e20, 0.0, 1e-30),
    "fp32_abs_sum_overflows": (np.float32, 2e38, 1e-30, 0.0),
    "fp32_both_terms_overflow": (np.float32, 1e38, 1e-35, 1e-60),
    "bf16_squares_overflow": (BFLOAT16, 1e25, 0.0, 1e-40),
    "bf16_abs_sum_overflows": (BFLOAT16, 2e38, 1e-30, 0.0),
    "fp32_squares_underflow": (np.float32, 1e-25, 0.0, 1e30),
    "bf16_squares_underflow": (BFLOAT16, 1e-30, 0.0, 1e40),
    "fp64_squares_overflow": (np.float64, 1e200, 0.0, 1e-300),
    "fp64_abs_sum_overflows": (np.float64, 1.1e308, 1e-300, 0.0),
    "fp64_squares_underflow": (np.float64, 1e-200, 0.0, 1e300),
}


def weights_for(rng, n, dtype, magnitude):
    w = (rng.random(n) + 0.5) * magnitude
    w[::3] *= -1
    return w.astype(dtype)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("n", [1, 2, 17, 1000, CHUNK + 5])
def test_value_is_finite_and_right(isa, rng, case, n):
    dtype, magnitude, l1, l2 = CASES[case]
    w = weights_for(rng, n, dtype, magnitude)
    expected = exact(w, l1, l2, dtype)
    assert math.isfinite(expected) and expected != 0.0
    got = fastpenalty.l1_l2(w, l1, l2)
    assert_value_close(got, expected, VALUE_RTOL[np.dtype(dtype)])
    g = np.zeros_like(w)
    assert_value_close(fastpenalty.accumulate_(w, g, l1, l2), expected, VALUE_RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_extreme_blocks_among_ordinary_ones(isa, rng, set_threads, case):
    # Ordinary weights with one extreme stretch in the middle of a chunk: the redone block and the
    # fast ones add up in a fixed order, identical for every thread count.
    dtype, magnitude, l1, l2 = CASES[case]
    # Ordinary weights whose own penalty is finite with these factors and whose blocks are fast.
    ordinary = {np.dtype(np.float64): 1e-130}.get(np.dtype(dtype), 1e-10) if magnitude < 1 else 1.0
    w = weights_for(rng, 3 * CHUNK + 77, dtype, ordinary)
    w[CHUNK + 100:CHUNK + 3000] = weights_for(rng, 2900, dtype, magnitude)
    expected = exact(w, l1, l2, dtype)
    assert math.isfinite(expected) and expected != 0.0
    values = set()
    for threads in (1, 2, 3):
        set_threads(threads)
        values.add(fastpenalty.l1_l2(w, l1, l2))
        values.add(fastpenalty.value_many([w[:0], w], l1, l2))
    got = fastpenalty.l1_l2(w, l1, l2)
    assert len(values) == 1
    assert_value_close(got, expected, VALUE_RTOL[np.dtype(dtype)])
    assert len({fastpenalty.l1_l2(w, l1, l2) for _ in range(3)}) == 1


def test_issue_example_l2_of_1e20_is_1e10(isa):
    assert fastpenalty.l2(np.array([1e20], np.float32), 1e-30) == pytest.approx(1e10, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, BFLOAT16], ids=["float32", "float64", "bfloat16"])
def test_non_finite_weights_still_propagate(isa, dtype):
    w = np.array([1.0, np.inf, 2.0] * 40, dtype)
    assert fastpenalty.l1_l2(w, 0.1, 0.1) == math.inf
    w[7] = np.nan
    assert math.isnan(fastpenalty.l1_l2(w, 0.1, 0.1))


def test_value_beyond_the_output_range_is_inf(isa):
    assert fastpenalty.l2(np.array([1e20] * 9, np.float32), 1.0) == math.inf
    assert fastpenalty.l2(np.array([1e200] * 9, np.float64), 1.0) == math.inf
