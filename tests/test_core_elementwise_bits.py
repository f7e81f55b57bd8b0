"""The per-element contract of common/penalty_math.h, bit for bit: every ISA gives the bits of a
NumPy emulation of the contract (float32 arithmetic where the factors fit float32, double where
they do not, so no factor overflows or flushes), signed zero as the oracle gives it, and float64
(and float32 on the double path) equal to the float64 oracle's bits."""
import numpy as np
import pytest
from _tolerances import BFLOAT16, DTYPE_IDS, FLOAT_DTYPES, assert_elements_close

import fastpenalty
from fastpenalty import reference
from _cases import contract

FACTOR_CASES = [(0.013, 0.0), (0.0, 0.021), (0.013, 0.021), (3.5, 1.25), (1e-3, 1e-7), (0.3, 7e5)]
# Factors outside float32's safe range: the double path.
EXTREME_FACTORS = [(0.0, 2e38), (0.0, 1e-46), (1e-40, 1e-3), (0.5, 2e30), (2e30, 0.0), (1e-39, 0.0)]


def wide_weights(rng, n, dtype):
    """Weights over many binades (with +-0), so roundings of every kind happen."""
    span = 14 if np.dtype(dtype) == np.float16 else 30
    mags = np.ldexp(rng.random(n) + 0.5, rng.integers(-span, span, n))
    w = np.where(rng.random(n) < 0.5, -mags, mags)
    w[rng.integers(0, n, n // 20)] = 0.0
    w[rng.integers(0, n, n // 20)] = -0.0
    return w.astype(dtype)


def bits(a):
    return np.asarray(a).view(np.uint8).tobytes()


def run_isas(fn):
    """fn() under every ISA of this machine; its results by ISA name."""
    previous = fastpenalty.get_isa()
    out = {}
    try:
        for name in fastpenalty.available_isas():
            fastpenalty.set_isa(name)
            out[name] = fn()
    finally:
        fastpenalty.set_isa(previous)
    return out


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", FACTOR_CASES)
@pytest.mark.parametrize("n", [1, 7, 17, 33, 97, 5000])
def test_grad_and_accumulate_bits_are_the_same_on_every_isa(rng, dtype, l1, l2, n):
    w = wide_weights(rng, n, dtype)
    g0 = wide_weights(rng, n, dtype)

    def both():
        g = g0.copy()
        fastpenalty.accumulate_(w, g, l1, l2)
        return bits(fastpenalty.grad(w, l1, l2)), bits(g)

    results = run_isas(both)
    first = next(iter(results.values()))
    for name, got in results.items():
        assert got[0] == first[0], f"grad bits of {name} differ"
        assert got[1] == first[1], f"accumulate bits of {name} differ"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", FACTOR_CASES + EXTREME_FACTORS)
def test_every_isa_gives_the_contract_bits(isa, rng, dtype, l1, l2):
    w = wide_weights(rng, 4099, dtype)
    g = wide_weights(rng, 4099, dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        expected_grad, expected_g = contract(w, l1, l2), contract(w, l1, l2, g)
    assert bits(fastpenalty.grad(w, l1, l2)) == bits(expected_grad)
    fastpenalty.accumulate_(w, g, l1, l2)
    assert bits(g) == bits(expected_g)


@pytest.mark.parametrize("dtype, factors", [(np.float64, FACTOR_CASES + EXTREME_FACTORS),
                                            (np.float32, EXTREME_FACTORS)], ids=["float64", "float32-double-path"])
def test_double_path_equals_the_oracle_bit_for_bit(isa, rng, dtype, factors):
    for l1, l2 in factors:
        w = wide_weights(rng, 1031, dtype)
        g = wide_weights(rng, 1031, dtype)
        expected_g = g.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            reference.accumulate_(w, expected_g, l1, l2)
            expected = reference.grad(w, l1, l2)
        assert bits(fastpenalty.grad(w, l1, l2)) == bits(expected), (l1, l2)
        fastpenalty.accumulate_(w, g, l1, l2)
        assert bits(g) == bits(expected_g), (l1, l2)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", [(0.25, 0.0), (0.0, 0.5), (0.25, 0.5), (0.0, 2e38)])
def test_nan_and_inf_sit_where_the_contract_puts_them(isa, dtype, l1, l2):
    w = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0] * 7, dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = contract(w, l1, l2).astype(np.float64)
    got = fastpenalty.grad(w, l1, l2).astype(np.float64)
    assert np.array_equal(got, expected, equal_nan=True)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", [(0.0, 0.5), (0.25, 0.0), (0.25, 0.5)])
def test_grad_of_negative_zero_is_positive_zero_like_the_oracle(isa, dtype, l1, l2):
    w = np.array([-0.0] * 19, dtype=dtype)
    got = fastpenalty.grad(w, l1, l2)
    expected = reference.grad(w, l1, l2)
    assert not np.signbit(expected.astype(np.float64)).any()
    assert bits(got) == bits(expected)
    g = np.array([-0.0] * 19, dtype=dtype)  # -0 + +0 = +0 in the oracle too
    expected_g = g.copy()
    reference.accumulate_(w, expected_g, l1, l2)
    fastpenalty.accumulate_(w, g, l1, l2)
    assert bits(g) == bits(expected_g)


@pytest.mark.parametrize("n", [1, 17, 65])
def test_huge_l2_gives_zero_gradient_at_zero_not_nan(isa, n):
    # 2 * 2e38 overflows float32: the kernels used to apply it as inf, and inf * 0 = NaN.
    w = np.zeros(n, np.float32)
    w[::2] = 1e-30
    got = fastpenalty.grad(w, 0.0, 2e38)
    expected = reference.grad(w, 0.0, 2e38)
    assert not np.isnan(got).any()
    assert bits(got) == bits(expected)
    assert got[0] == np.float32(4e8) and (n == 1 or got[1] == 0.0)
    g = np.ones(n, np.float32)
    fastpenalty.accumulate_(w, g, 0.0, 2e38)
    assert not np.isnan(g).any() and (n == 1 or g[1] == 1.0)


@pytest.mark.parametrize("dtype", [np.float32, BFLOAT16], ids=["float32", "bfloat16"])
def test_tiny_l2_does_not_flush_the_gradient(isa, dtype):
    # 1e-46 is below float32's smallest subnormal: cast to float32 it became 0.
    w = np.array([1e30, -1e30, 3e35] * 11, dtype=dtype)
    got = fastpenalty.grad(w, 0.0, 1e-46)
    expected = reference.grad(w, 0.0, 1e-46)
    assert (got != 0).all()
    assert_elements_close(got, expected, dtype)
    g = np.zeros_like(w)
    fastpenalty.accumulate_(w, g, 0.0, 1e-46)
    assert bits(g) == bits(got)


def test_tiny_l1_with_large_l2_keeps_both_terms(isa):
    # l1 = 1e-45 is a float32 subnormal: in double it still decides the gradient at w = 0's neighbours.
    w = np.array([1e-38, -1e-38, 0.0] * 6, dtype=np.float32)
    got = fastpenalty.grad(w, 1e-40, 1e-3)
    assert bits(got) == bits(reference.grad(w, 1e-40, 1e-3))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
def test_subnormal_results_are_rounded_not_flushed(isa, dtype):
    # Gradients below float32's (and bf16's) normal range: AVX512_BF16's vcvtneps2bf16 flushes
    # these, so the kernels narrow such registers in software; every ISA must give the contract's bits.
    tiny = float(np.finfo(np.float32).tiny) if np.dtype(dtype) != np.float16 else 6.1e-5
    w = (np.linspace(-4, 4, 101) * tiny).astype(dtype)
    for l1, l2 in [(0.0, 0.3), (0.0, 0.25), (1e-3, 0.3)]:
        got = fastpenalty.grad(w, l1, l2)
        expected = contract(w, l1, l2)
        assert bits(got) == bits(expected), (l1, l2)
        assert np.count_nonzero(got.astype(np.float64)) > 0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", [(0.25, 0.0), (0.0, 0.5), (0.25, 0.5)])
def test_nan_bits_are_the_same_on_every_isa(dtype, l1, l2):
    # Which NaN g + grad keeps where both are NaN is unspecified (penalty_math.h): those lanes
    # only have to be NaN; every other lane, NaN from w or from g alone included, has fixed bits.
    w = np.array([np.nan, -np.nan, 1.0, np.inf, -np.nan] * 9, dtype=dtype)
    g = np.array([1.0, 2.0, np.nan, 0.5, np.nan] * 9, dtype=dtype)
    both_nan = np.isnan(w.astype(np.float64)) & np.isnan(g.astype(np.float64))

    def both():
        out = g.copy()
        fastpenalty.accumulate_(w, out, l1, l2)
        assert np.isnan(out[both_nan].astype(np.float64)).all()
        out[both_nan] = 0
        return bits(fastpenalty.grad(w, l1, l2)), bits(out)

    results = run_isas(both)
    assert len(set(results.values())) == 1, sorted(results)


# NaNs with payloads, signaling ones included, by storage width: the AVX2 sign term skips its NaN
# blend where the L2 term carries the NaN (kernel_loops.h simd_grad_term), which must not change bits.
NAN_PAYLOADS = {
    2: [0x7C01, 0xFD23, 0x7E55, 0xFF81, 0x7F81, 0xFFC3],
    4: [0x7F800001, 0xFFA00005, 0x7FC12345, 0xFF812345],
    8: [0x7FF0000000000001, 0xFFF4000000000123, 0x7FF8000000ABCDEF],
}


def nan_payload_weights(dtype, n):
    itemsize = np.dtype(dtype).itemsize
    words = np.array(NAN_PAYLOADS[itemsize], dtype=f"u{itemsize}")
    w = np.resize(np.array([0.5, -2.0, 0.0], dtype=dtype), n)
    w.view(f"u{itemsize}")[::3] = np.resize(words, len(w[::3]))
    return w


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", [(0.25, 0.5), (0.25, 0.0), (1e-40, 0.5), (0.3, 7e5)])
def test_nan_payload_bits_are_the_same_on_every_isa(dtype, l1, l2):
    w = nan_payload_weights(dtype, 67)
    g0 = np.resize(np.array([1.0, -0.25], dtype=dtype), w.size)

    def both():
        g = g0.copy()
        fastpenalty.accumulate_(w, g, l1, l2)
        return bits(fastpenalty.grad(w, l1, l2)), bits(g)

    results = run_isas(both)
    assert len(set(results.values())) == 1, sorted(results)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
@pytest.mark.parametrize("l1, l2", [(0.25, 0.0), (0.0, 0.5), (0.25, 0.5)])
def test_computed_nan_bits_are_the_same_on_every_isa(dtype, l1, l2):
    # NaNs the kernels make rather than read: inf + -inf in g += grad, and g's own NaN payloads
    # (signalling ones included) carried through the sum. The AVX2 bf16 store rounds NaNs like any
    # other value (kernels_avx2.cpp: it relies on their low 16 bits being zero), so they must come
    # out quiet and with the same bits as the scalar kernels'.
    itemsize = np.dtype(dtype).itemsize
    w = np.resize(np.array([np.inf, -np.inf, 0.5, -2.0, 0.0], dtype=dtype), 73)
    g = np.resize(np.array([-np.inf, np.inf, 0.0, 0.0, 1.0], dtype=dtype), w.size)
    payloads = np.resize(np.array(NAN_PAYLOADS[itemsize], dtype=f"u{itemsize}"), len(g[2::5]))
    g.view(f"u{itemsize}")[2::5] = payloads

    def accumulated():
        out = g.copy()
        fastpenalty.accumulate_(w, out, l1, l2)
        return bits(out)

    results = run_isas(accumulated)
    assert len(set(results.values())) == 1, sorted(results)
    out = g.copy()
    fastpenalty.accumulate_(w, out, l1, l2)
    as_float = out.astype(np.float64)
    g_nan = np.isnan(g.astype(np.float64))
    assert g_nan.any() and np.isnan(as_float[g_nan]).all()
    if l2:
        assert np.isnan(as_float[0::5]).all() and np.isnan(as_float[1::5]).all()
    quiet_bit = {2: 0x0040 if dtype == BFLOAT16 else 0x0200, 4: 0x00400000, 8: 0x0008000000000000}[itemsize]
    words = out.view(f"u{itemsize}")[np.isnan(as_float)]
    assert (words & quiet_bit).all()
