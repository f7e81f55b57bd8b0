"""Accuracy of the value at 10^7 elements against an exact sum: relative error at most 1e-6 for
fp32 (and the fp16/bf16 inputs that accumulate the same way), every ISA, the value-only and the
fused (accumulate_) kernels."""
import math
from fractions import Fraction

import numpy as np
import pytest

import fastpenalty
from _tolerances import BFLOAT16, FLOAT16, FLOAT32

N = 10**7
CONTRACT_RTOL = 1e-6
RTOL = {FLOAT32: CONTRACT_RTOL, FLOAT16: CONTRACT_RTOL, BFLOAT16: CONTRACT_RTOL}


def exact_sum(values):
    """The exact sum of a float64 array, as a Fraction (what math.fsum rounds, in a fraction of
    its time at 10^7 elements). Every x is q * 2**(e - 53) with an integer |q| < 2**53 (frexp);
    q is split into 26/27-bit halves whose per-exponent sums over 10^7 elements stay below 2**53,
    so the float64 bincounts of them are exact integers."""
    x = np.asarray(values, np.float64).reshape(-1)
    mantissa, exponent = np.frexp(x)
    q = (mantissa * 2.0**53).astype(np.int64)
    hi, lo = (q >> 26).astype(np.float64), (q & ((1 << 26) - 1)).astype(np.float64)
    assert x.size < 2**24
    low_exponent = int(exponent.min())
    bins = exponent - low_exponent
    hi_sums, lo_sums = np.bincount(bins, weights=hi), np.bincount(bins, weights=lo)
    total = Fraction(0)
    for k in np.flatnonzero(hi_sums.astype(bool) | lo_sums.astype(bool)):
        integer = int(hi_sums[k]) * 2**26 + int(lo_sums[k])
        total += Fraction(integer) * Fraction(2) ** (int(k) + low_exponent - 53)
    return total


def test_exact_sum_agrees_with_fsum():
    rng = np.random.default_rng(0)
    wide = rng.standard_normal(10**5) * 10.0 ** rng.integers(-30, 30, 10**5)
    x = np.concatenate([wide, [0.0, -0.0, 5e-324]])
    assert float(exact_sum(x)) == math.fsum(x)
    assert float(exact_sum(x * x)) == math.fsum(x * x)
    assert exact_sum(np.array([0.1, 0.2, -0.3])) == Fraction(0.1) + Fraction(0.2) - Fraction(0.3)


def make(name, dtype):
    rng = np.random.default_rng(12345)
    if name == "normal":
        x = rng.standard_normal(N, dtype=np.float32)
    elif name == "positive":  # same sign, similar size: the hardest case for a running fp32 sum
        x = rng.random(N, dtype=np.float32) + np.float32(0.5)
    else:  # a constant-initialized weight
        x = np.full(N, 0.1, np.float32)
    return x.astype(dtype)


DATASETS = [
    ("normal", FLOAT32),
    ("positive", FLOAT32),
    ("constant", FLOAT32),
    ("normal", FLOAT16),
    ("positive", BFLOAT16),
]


@pytest.fixture(scope="module", params=DATASETS, ids=[f"{n}-{d}" for n, d in DATASETS])
def dataset(request):
    name, dtype = request.param
    w = make(name, dtype)
    x = w.astype(np.float64)
    exact_abs = exact_sum(np.abs(x))
    exact_sq = exact_sum(x * x)  # fp32 and narrower squares are exact in float64
    return w, exact_abs, exact_sq


def assert_accurate(value, exact, rtol):
    error = float(abs(Fraction(value) - exact) / exact)
    assert error <= rtol, f"value {value!r}, exact {float(exact)!r}: relative error {error:.3g} > {rtol:g}"


def test_value_accuracy_at_ten_million(isa, dataset):
    w, exact_abs, exact_sq = dataset
    rtol = RTOL[w.dtype]
    assert_accurate(fastpenalty.l1(w, 1.0), exact_abs, rtol)
    assert_accurate(fastpenalty.l2(w, 1.0), exact_sq, rtol)
    assert_accurate(fastpenalty.value_many([w], 0.0, 1.0), exact_sq, rtol)


def test_fused_accumulate_accuracy_at_ten_million(isa, dataset):
    w, exact_abs, exact_sq = dataset
    rtol = RTOL[w.dtype]
    g = np.zeros_like(w)
    assert_accurate(fastpenalty.accumulate_(w, g, 1.0, 0.0), exact_abs, rtol)
    assert_accurate(fastpenalty.accumulate_(w, g, 0.0, 1.0), exact_sq, rtol)


def test_constant_weights_accuracy(isa):
    # Constant weights are the worst case of fp32 lane sums (the rounding errors never cancel), and
    # the relative error of a constant tensor does not shrink with its size: many constants at
    # four chunks stand in for 10^7 elements. n * c and n * c^2 are exact in float64 here.
    n = 4 * fastpenalty._core.CHUNK
    constants = np.random.default_rng(7).uniform(0.01, 10.0, 300).astype(np.float32)
    g = np.zeros(n, np.float32)
    worst = (0.0, None, None)
    for c in constants:
        w = np.full(n, c, np.float32)
        exact_abs, exact_sq = n * float(c), n * float(c) ** 2
        results = {
            "l1": (fastpenalty.l1(w, 1.0), exact_abs),
            "l2": (fastpenalty.l2(w, 1.0), exact_sq),
            "accumulate_ l1": (fastpenalty.accumulate_(w, g, 1.0, 0.0), exact_abs),
            "accumulate_ l2": (fastpenalty.accumulate_(w, g, 0.0, 1.0), exact_sq),
        }
        for op, (value, exact) in results.items():
            error = abs(value - exact) / exact
            if error > worst[0]:
                worst = (error, op, float(c))
    assert worst[0] <= CONTRACT_RTOL, f"{worst[1]} of constant {worst[2]!r}: relative error {worst[0]:.3g}"
