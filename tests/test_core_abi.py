"""The C ABI's facts: versions (header, library, package), the soname, status strings, the
dtype table and result rule (with fastpenalty._dtypes built from it), the stable header free of
experimental entries, and fp_sums_many (exposed as _core.sums_many)."""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from _tolerances import DTYPE_IDS, FLOAT_DTYPES, VALUE_RTOL

import fastpenalty
from fastpenalty import _cmake, _core, _dtypes, reference

HEADER_DIR = os.path.join(_cmake.include_dir(), "fastpenalty")


def read_header(name):
    with open(os.path.join(HEADER_DIR, name)) as f:
        return f.read()


def test_versions_agree():
    assert _core.VERSION == fastpenalty.__version__
    assert ".".join(map(str, _core.HEADER_VERSION)) == fastpenalty.__version__
    assert _core.ABI_VERSION == 1


@pytest.mark.skipif(shutil.which("readelf") is None, reason="needs readelf")
def test_library_soname_carries_the_abi_version():
    path = _cmake.library_path()
    assert path.endswith(f"libfastpenalty.so.{_core.ABI_VERSION}")
    dynamic = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    assert f"Library soname: [libfastpenalty.so.{_core.ABI_VERSION}]" in dynamic


def test_status_strings_are_stateless_and_total():
    names = [_core.status_string(s) for s in range(6)]
    assert names == ["ok", "invalid argument", "unsupported dtype", "unsupported ISA", "out of memory",
                     "internal error"]
    assert _core.status_string(6) == _core.status_string(-1) == "unknown status"


def test_stable_header_has_no_experimental_entries():
    stable = read_header("fastpenalty.h")
    experimental = read_header("fastpenalty_experimental.h")
    for name in ("FP_CHUNK", "fp_probe_add", "fp_probe_sum", "fp_experimental_use_openmp", "fp_experimental_last_pool"):
        assert not re.search(rf"\b{name}\b", stable), name
        assert re.search(rf"\b{name}\b", experimental), name
    for name in ("fp_version", "fp_status_string", "fp_sums_many", "FP_VERSION_MAJOR", "fp_last_error"):
        assert re.search(rf"\b{name}\b", stable), name


def test_dtype_table_is_the_python_one():
    assert _core.DTYPES == ((0, "float32", 4), (1, "float64", 8), (2, "float16", 2), (3, "bfloat16", 2))
    for code, name, size in _core.DTYPES:
        assert _dtypes.ITEMSIZE[code] == size and _dtypes.NAMES[code] == name
        assert _dtypes.numpy_dtype(code).itemsize == size
        assert _dtypes.numpy_code(_dtypes.numpy_dtype(code)) == code
    assert (_dtypes.FLOAT32, _dtypes.FLOAT64, _dtypes.FLOAT16, _dtypes.BFLOAT16) == (0, 1, 2, 3)


@pytest.mark.parametrize("code", [-1, 4, 7, 2**31 - 1])
def test_unknown_dtype_code_is_an_error_never_size_2(code):
    with pytest.raises(ValueError, match="unknown fastpenalty dtype code"):
        _dtypes.itemsize(code)
    with pytest.raises(TypeError, match="unknown dtype code"):
        _core.result_dtype([0, code])
    w = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="unsupported dtype code"):
        _core.value(w.ctypes.data, 4, code, 1.0, 0.0)
    with pytest.raises(TypeError, match="unsupported dtype code"):
        _core.sums_many([w.ctypes.data], [4], [code])


@pytest.mark.parametrize("codes, result", [([], 0), ([1], 1), ([1, 1], 1), ([1, 0], 0), ([2, 3], 0), ([3], 0)])
def test_result_dtype_rule(codes, result):
    assert _core.result_dtype(codes) == result
    assert _dtypes.result_is_fp64(codes) == (result == 1)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
def test_sums_many_matches_the_oracle_per_tensor(isa, weights, dtype):
    ws = [weights(n, dtype) for n in (0, 1, 7, 33, 3 * _core.CHUNK + 5)]
    abs_sums, sq_sums = _core.sums_many([w.ctypes.data for w in ws], [w.size for w in ws],
                                        [_dtypes.numpy_code(dtype)] * len(ws))
    rtol = VALUE_RTOL[np.dtype(dtype)]
    for w, a, q in zip(ws, abs_sums, sq_sums):
        assert a == pytest.approx(reference.l1(w, 1.0), rel=rtol, abs=0.0)
        assert q == pytest.approx(reference.l2(w, 1.0), rel=rtol, abs=0.0)
    # One read gives the same sums the value uses: l1 * sum|w| + l2 * sum w^2 is value_many's term.
    big = ws[-1]
    assert _core.value(big.ctypes.data, big.size, _dtypes.numpy_code(big.dtype), 0.5, 0.25) == (
        0.5 * abs_sums[-1] + 0.25 * sq_sums[-1])


def test_sums_many_of_extreme_float64_is_finite_where_the_sum_is():
    w = np.array([1e150, -1e150, 3e-200], np.float64)
    (a,), (q,) = _core.sums_many([w.ctypes.data], [3], [_dtypes.FLOAT64])
    assert a == pytest.approx(2e150) and q == pytest.approx(2e300)
    w = np.array([1e200], np.float64)
    (a,), (q,) = _core.sums_many([w.ctypes.data], [1], [_dtypes.FLOAT64])
    assert a == 1e200 and q == np.inf


def test_sums_many_checks_its_arguments():
    w = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="same length"):
        _core.sums_many([w.ctypes.data], [3, 3], [0])
    with pytest.raises(ValueError, match="negative element count"):
        _core.sums_many([w.ctypes.data], [-1], [0])
    with pytest.raises(ValueError, match="null weight pointer"):
        _core.sums_many([0], [3], [0])
    assert _core.sums_many([], [], []) == ([], [])
