"""The proximal step of the native layer (_core.prox_many / prox / numpy_prox_many): the new weights
bit for bit against the NumPy emulation of penalty_math.h's contract (_cases.prox_contract) and
within tolerance of the float64 formula, the value equal to _core.value_many of the result, the
zero count, every dtype, ISA, odd and chunk-crossing sizes, thread counts, special values, the
no-write cases, and errors that leave every byte untouched."""
import ml_dtypes
import numpy as np
import pytest

import fastpenalty
from fastpenalty import _core, _dtypes, reference
from _cases import prox_contract
from _tolerances import FLOAT_DTYPES, VALUE_RTOL, assert_elements_close, assert_value_close

# (lr, l1, l2): each term alone, both, factors that take the float64 path for 32/16-bit weights
# (T below 2^-126 or above 2^100, S above 2^100: there float32 quotients would differ), a decay whose float32 divisor rounds to 1, and the no-write
# cases.
PROX_FACTORS = {
    "l1_only": (0.5, 0.3, 0.0),
    "l2_only": (0.5, 0.0, 0.25),
    "both": (0.1, 2.0, 0.7),
    "tiny_shrink_wide": (1.0, 1e-40, 0.3),
    "huge_shrink_wide": (1e-3, 1e35, 0.0),
    "huge_decay_wide": (1.0, 0.0, 1e31),
    "divisor_rounds_to_one": (1e-9, 0.5, 1e-9),
    "strong_decay": (1.0, 0.0, 10.0),
    "lr_zero": (0.0, 1.0, 1.0),
    "factors_zero": (0.5, 0.0, 0.0),
}
SIZES = (0, 1, 2, 3, 5, 7, 15, 17, 31, 33, 63, 65, 97, 16385, 3 * 16384 + 7)


def code(a):
    return _dtypes.numpy_code(a.dtype, "w")


def run_prox(w, lr, l1, l2):
    return _core.prox(w.ctypes.data, w.size, code(w), lr, l1, l2)


def value_of(ws, l1s, l2s):
    return _core.value_many([w.ctypes.data for w in ws], [w.size for w in ws], [code(w) for w in ws], l1s, l2s)


def zeros_of(ws):
    return sum(int(np.count_nonzero(w == 0)) for w in ws)


def random_weights(rng, n, dtype, zero_fraction=0.05):
    x = rng.random(n) * 4.0 - 2.0
    z = rng.integers(0, max(n, 1), int(n * zero_fraction))
    x[z] = 0.0
    x[z[::2]] = -0.0
    return x.astype(dtype)


def prox_float64(w, lr, l1, l2):
    """The formula in float64, rounded once to w's dtype (no-write cases: w itself)."""
    if lr == 0.0 or (l1 == 0.0 and l2 == 0.0):
        return w.copy()
    x = w.astype(np.float64)
    with np.errstate(invalid="ignore"):
        r = np.sign(x) * np.maximum(np.abs(x) - lr * l1, 0.0) / (1.0 + 2.0 * lr * l2)
    return r.astype(w.dtype)


def check_step(w, lr, l1, l2):
    """Runs _core.prox on w and checks bits, zero count and value; returns the expected weights."""
    expected = prox_contract(w, lr, l1, l2)
    value, zeros = run_prox(w, lr, l1, l2)
    assert w.tobytes() == expected.tobytes(), first_difference(w, expected)
    assert zeros == zeros_of([w])
    same = value_of([w], [l1], [l2])
    assert value == same or (np.isnan(value) and np.isnan(same)), (value, same)
    return expected


def first_difference(actual, expected):
    a = actual.view(f"u{actual.itemsize}")
    e = expected.view(f"u{expected.itemsize}")
    i = np.flatnonzero(a != e)
    return f"{i.size} elements differ, first at {i[:1]}: {actual[i[:1]]} vs {expected[i[:1]]}" if i.size else ""


@pytest.mark.parametrize("case", sorted(PROX_FACTORS))
@pytest.mark.parametrize("n", SIZES)
def test_prox_matches_contract_bits(isa, float_dtype, n, case, rng):
    lr, l1, l2 = PROX_FACTORS[case]
    check_step(random_weights(rng, n, float_dtype), lr, l1, l2)


@pytest.mark.parametrize("case", sorted(PROX_FACTORS))
def test_prox_close_to_float64_formula_and_reference_value(isa, float_dtype, case, rng):
    lr, l1, l2 = PROX_FACTORS[case]
    w = random_weights(rng, 4097, float_dtype)
    oracle = prox_float64(w, lr, l1, l2)
    value, _ = run_prox(w, lr, l1, l2)
    assert_elements_close(w, oracle, float_dtype, scale=np.abs(oracle.astype(np.float64)) + lr * l1)
    assert_value_close(value, reference.l1_l2(w, l1, l2), VALUE_RTOL[np.dtype(float_dtype)], 2.0**-149)


def test_prox_makes_exact_zeros_where_the_shrink_exceeds_the_weight(isa, float_dtype, rng):
    w = random_weights(rng, 1000, float_dtype, zero_fraction=0.0)
    small = np.abs(w.astype(np.float64)) <= 0.5
    value, zeros = run_prox(w, 1.0, 0.5, 0.0)
    assert zeros >= int(small.sum()) > 100
    assert np.all(w[small] == 0)
    assert not np.signbit(w[w == 0].astype(np.float32)).any(), "a written zero is +0"


def special_values(dtype):
    """NaN (quiet and signalling, both signs), infinities, signed zeros, subnormals and the largest
    finite numbers of dtype, with ordinary values between them."""
    dtype = np.dtype(dtype)
    info = ml_dtypes.finfo(dtype)
    uint = np.dtype(f"u{dtype.itemsize}")
    bits = dtype.itemsize * 8
    exp_mask = int(np.array(np.inf, dtype).view(uint))
    quiet = (exp_mask | (1 << (int(info.nmant) - 1)))
    sign = 1 << (bits - 1)
    nans = np.array([quiet, quiet | sign, exp_mask | 1, exp_mask | 1 | sign, quiet | 5], uint).view(dtype)
    finite = np.array([0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal),
                       float(info.tiny), -float(info.tiny), float(info.max), -float(info.max), 1.0, -3.0,
                       0.25, np.inf, -np.inf], np.float64).astype(dtype)
    return np.concatenate([finite, nans, finite[::-1]])


@pytest.mark.parametrize("case", sorted(PROX_FACTORS))
def test_special_values_keep_nan_bits_and_infinities(isa, float_dtype, case):
    lr, l1, l2 = PROX_FACTORS[case]
    base = special_values(float_dtype)
    for n in (len(base), 3 * len(base) + 1):  # through the vector body and the tail
        w = np.resize(base, n)
        nan, inf = np.isnan(w), np.isinf(w)
        nan_bits, infinities = w.view(f"u{w.itemsize}")[nan].copy(), w[inf].copy()
        check_step(w, lr, l1, l2)
        assert np.array_equal(w.view(f"u{w.itemsize}")[nan], nan_bits), "a NaN changed its bits"
        assert np.array_equal(w[inf], infinities), "an infinity changed"


@pytest.mark.parametrize("lr, l1, l2", [(0.0, 1.0, 1.0), (0.5, 0.0, 0.0), (0.0, 0.0, 0.0)])
def test_no_write_keeps_every_bit_and_still_counts(isa, float_dtype, lr, l1, l2, rng):
    w = np.concatenate([special_values(float_dtype), random_weights(rng, 16390, float_dtype)])
    before = w.tobytes()
    value, zeros = run_prox(w, lr, l1, l2)
    assert w.tobytes() == before
    assert zeros == zeros_of([w]) > 0
    same = value_of([w], [l1], [l2])
    assert value == same or (np.isnan(value) and np.isnan(same))


def test_huge_weights_value_redone_like_value_many(isa, float_dtype, rng):
    """Sums that overflow float32 blocks (and float64 beyond 1e154) go through exact_sums.cpp as
    value_many's do: the prox value still equals value_many of the result."""
    big = float(ml_dtypes.finfo(float_dtype).max)
    w = (random_weights(rng, 5000, np.float64) * (big / 2.5)).astype(float_dtype)
    check_step(w, 1e-3, 0.5, 0.25)
    w = (random_weights(rng, 5000, np.float64) * 1e-30).astype(float_dtype)
    check_step(w, 1.0, 1e-32, 0.5)


def test_prox_many_mixed_dtypes_per_tensor_factors(isa, rng):
    ws, expected, lrs, l1s, l2s = [], [], [], [], []
    cases = list(PROX_FACTORS.values())
    for i, n in enumerate(SIZES):
        dtype = FLOAT_DTYPES[i % 4]
        lr, l1, l2 = cases[i % len(cases)]
        w = random_weights(rng, n, dtype)
        expected.append(prox_contract(w, lr, l1, l2))
        ws.append(w)
        lrs.append(lr)
        l1s.append(l1)
        l2s.append(l2)
    value, zeros = _core.prox_many([w.ctypes.data for w in ws], [w.size for w in ws], [code(w) for w in ws],
                                   lrs, l1s, l2s)
    for w, e in zip(ws, expected):
        assert w.tobytes() == e.tobytes(), first_difference(w, e)
    assert zeros == zeros_of(ws)
    assert value == value_of(ws, l1s, l2s)


def test_prox_many_broadcasts_one_factor_entry(rng):
    ws = [random_weights(rng, n, np.float32) for n in (5, 70000, 0, 33)]
    copies = [w.copy() for w in ws]
    args = ([w.ctypes.data for w in ws], [w.size for w in ws], [code(w) for w in ws])
    value, zeros = _core.prox_many(*args, [0.25], [0.4, 0.4, 0.4, 0.4], [0.1])
    v2, z2 = _core.prox_many([w.ctypes.data for w in copies], *args[1:], [0.25] * 4, [0.4] * 4, [0.1] * 4)
    assert [w.tobytes() for w in ws] == [w.tobytes() for w in copies]
    assert (value, zeros) == (v2, z2)


def test_empty_list_and_empty_tensors():
    assert _core.prox_many([], [], [], [], [], []) == (0.0, 0)
    assert _core.prox(0, 0, _core.FLOAT32, 0.1, 0.1, 0.1) == (0.0, 0)
    assert _core.prox_many([0, 0], [0, 0], [0, 3], [0.1], [0.2], [0.3]) == (0.0, 0)
    assert _core.numpy_prox_many([], 0.1, 0.2, 0.3) == (0.0, 0)


def test_thread_counts_give_identical_bits(set_threads, rng):
    sizes = (5 * 16384 + 3, 1 << 18, 7, 40000)
    base = [random_weights(rng, n, FLOAT_DTYPES[i % 4]) for i, n in enumerate(sizes)]
    results = []
    for threads in (1, 2):
        set_threads(threads)
        ws = [w.copy() for w in base]
        out = _core.prox_many([w.ctypes.data for w in ws], [w.size for w in ws], [code(w) for w in ws],
                              [0.05], [0.5], [0.3])
        results.append((out, [w.tobytes() for w in ws]))
    assert results[0] == results[1]


def test_every_isa_gives_the_same_bits(rng):
    base = random_weights(rng, 3 * 16384 + 77, np.float32)
    base[::97] = np.nan
    outputs = set()
    previous = _core.get_isa()
    try:
        for name in _core.available_isas():
            _core.set_isa(name)
            for dtype in FLOAT_DTYPES:
                w = base.astype(dtype)
                zeros = run_prox(w, 0.3, 0.7, 0.45)[1]
                outputs.add((dtype.name, w.tobytes(), zeros))
    finally:
        _core.set_isa(previous)
    assert len(outputs) == len(FLOAT_DTYPES)


# ---- the NumPy fast path -----------------------------------------------------------------------


def test_numpy_fast_path_matches_prox_many(rng):
    ws = [random_weights(rng, n, FLOAT_DTYPES[i % 4]).reshape(-1, 1) for i, n in enumerate(SIZES)]
    copies = [w.copy() for w in ws]
    value, zeros = _core.numpy_prox_many(ws, 0.2, [0.5] * len(ws), 0.3)
    v2, z2 = _core.prox_many([w.ctypes.data for w in copies], [w.size for w in copies],
                             [code(w) for w in copies], [0.2], [0.5], [0.3])
    assert [w.tobytes() for w in ws] == [w.tobytes() for w in copies]
    assert zeros == z2
    assert value == float(np.float32(v2))  # mixed dtypes: the value rounded to float32
    w64 = [random_weights(rng, 1001, np.float64)]
    c64 = [w64[0].copy()]
    assert _core.numpy_prox_many(w64, 0.2, 0.5, 0.3) == _core.prox(c64[0].ctypes.data, 1001, 1, 0.2, 0.5, 0.3)


def numpy_refusals():
    a = np.linspace(-1, 1, 64, dtype=np.float32)
    readonly = a.copy()
    readonly.flags.writeable = False
    return {
        "strided": ([a.copy()[::2]], 0.1, 0.1, 0.1),
        "read_only": ([readonly], 0.1, 0.1, 0.1),
        "masked": ([np.ma.masked_array(a.copy())], 0.1, 0.1, 0.1),
        "list": ([[1.0, 2.0]], 0.1, 0.1, 0.1),
        "int_array": ([np.arange(4)], 0.1, 0.1, 0.1),
        "negative_lr": ([a.copy()], -0.1, 0.1, 0.1),
        "nan_l1": ([a.copy()], 0.1, float("nan"), 0.1),
        "inf_l2": ([a.copy()], 0.1, 0.1, float("inf")),
        "bool_factor": ([a.copy()], True, 0.1, 0.1),
        "numpy_factor": ([a.copy()], np.float32(0.1), 0.1, 0.1),
        "factor_list_length": ([a.copy(), a.copy()], [0.1, 0.1, 0.1], 0.1, 0.1),
        "overflowing_shrink": ([a.copy()], 1e200, 1e200, 0.0),
        "overlap": ([a, a], 0.1, 0.1, 0.1),
    }


@pytest.mark.parametrize("case", sorted(numpy_refusals()))
def test_numpy_fast_path_refuses_without_writing(case):
    ws, lr, l1, l2 = numpy_refusals()[case]
    before = [np.asarray(w).tobytes() for w in ws]
    assert _core.numpy_prox_many(ws, lr, l1, l2) is None
    assert [np.asarray(w).tobytes() for w in ws] == before


# ---- errors: raised before any write -----------------------------------------------------------


def error_cases():
    a = random_weights(np.random.default_rng(1), 300, np.float32)
    b = random_weights(np.random.default_rng(2), 40000, np.float64)
    ok = [a, b]

    def args(ws=ok, ns=None, dtypes=None, lrs=(0.1,), l1s=(0.2,), l2s=(0.3,), ptrs=None):
        return (ptrs if ptrs is not None else [w.ctypes.data for w in ws], ns if ns is not None else [w.size for w in ws],
                dtypes if dtypes is not None else [code(w) for w in ws], list(lrs), list(l1s), list(l2s))

    big = 1.7976931348623157e308
    return ok, {
        "dtype_code": (TypeError, args(dtypes=[0, 7])),
        "negative_n": (ValueError, args(ns=[300, -1])),
        "null_pointer": (ValueError, args(ptrs=[a.ctypes.data, 0])),
        "negative_lr": (ValueError, args(lrs=[0.1, -0.1])),
        "nan_l1": (ValueError, args(l1s=[0.1, float("nan")])),
        "inf_l2": (ValueError, args(l2s=[float("inf")])),
        "inf_lr": (ValueError, args(lrs=[float("inf")])),
        "shrink_overflows": (ValueError, args(lrs=[1e200], l1s=[1e200], l2s=[0.0])),
        "decay_overflows": (ValueError, args(lrs=[big], l1s=[0.0], l2s=[1.0])),
        "bad_factor_on_an_empty_tensor": (ValueError, args(ws=[a, b[:0]], lrs=[0.1, -1.0])),
        "overlap": (ValueError, args(ptrs=[a.ctypes.data, a.ctypes.data + 8], ns=[300, 10], dtypes=[0, 0])),
        "length_mismatch": (ValueError, args(ns=[300])),
        "factor_list_length": (ValueError, args(lrs=[0.1, 0.1, 0.1])),
        "empty_factor_list": (ValueError, args(l1s=[])),
    }


@pytest.mark.parametrize("case", sorted(error_cases()[1]))
def test_errors_leave_memory_untouched(case):
    ws, cases = error_cases()
    exc, args = cases[case]
    before = [w.tobytes() for w in ws]
    with pytest.raises(exc):
        _core.prox_many(*args)
    assert [w.tobytes() for w in ws] == before


def test_single_tensor_errors_leave_memory_untouched():
    w = np.linspace(-1, 1, 33, dtype=np.float16)
    before = w.tobytes()
    for lr, l1, l2, exc in ((0.1, -1.0, 0.0, ValueError), (float("nan"), 1.0, 0.0, ValueError)):
        with pytest.raises(exc):
            _core.prox(w.ctypes.data, w.size, code(w), lr, l1, l2)
    with pytest.raises(TypeError):
        _core.prox(w.ctypes.data, w.size, 4, 0.1, 0.1, 0.1)
    assert w.tobytes() == before
    assert fastpenalty._core.get_num_threads() >= 1
