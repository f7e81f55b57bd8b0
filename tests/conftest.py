"""Shared fixtures: the CPU kernel (ISA) and thread count, set and restored around a test;
reproducible per-test random numbers; random weights of any float dtype."""
import os
import sys
import zlib

import numpy as np
import pytest

# `from _tolerances import ...` must work under any pytest import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _cases  # noqa: E402
from _tolerances import DTYPE_IDS, FLOAT_DTYPES  # noqa: E402

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "fastpenalty",
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.load_profile("fastpenalty")
except ImportError:  # hypothesis is only needed by the property tests
    pass

# The sizes around the vector widths (and one far past a chunk) that every operation is checked at.
ODD_SIZES = (0, 1, 2, 3, 5, 7, 15, 16, 17, 31, 33, 63, 65, 97, 1000003)


@pytest.fixture(params=["scalar", "avx2", "avx512"])
def isa(request):
    """Runs the test with one CPU kernel, skipped where this machine lacks it."""
    import fastpenalty

    name = request.param
    if name not in fastpenalty.available_isas():
        pytest.skip(f"{name} is not available on this machine")
    previous = fastpenalty.set_isa(name)
    try:
        yield name
    finally:
        fastpenalty.set_isa(previous)


@pytest.fixture
def set_threads():
    """A function that sets the core's thread count; the count is restored after the test."""
    import fastpenalty

    previous = fastpenalty.get_num_threads()
    try:
        yield fastpenalty.set_num_threads
    finally:
        fastpenalty.set_num_threads(previous)


@pytest.fixture(params=FLOAT_DTYPES, ids=[DTYPE_IDS[d] for d in FLOAT_DTYPES])
def float_dtype(request):
    return request.param


@pytest.fixture(params=ODD_SIZES)
def odd_size(request):
    return request.param


@pytest.fixture
def rng(request):
    """Random numbers seeded from the test's id: reproducible, different for every test."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def random_weights(rng, shape, dtype, scale=2.0, zero_fraction=0.05):
    """Uniform weights in [-scale, scale) in ``dtype``, with some exact +0.0 and -0.0 among them
    (sign(0) = 0). Uniform rather than normal: it is several times cheaper at 10^6 elements."""
    x = np.asarray(rng.random(shape) * (2.0 * scale) - scale)
    flat = x.reshape(-1)
    zeros = rng.integers(0, max(flat.size, 1), int(flat.size * zero_fraction))
    flat[zeros] = 0.0
    flat[zeros[::2]] = -0.0
    return x.astype(dtype)


@pytest.fixture
def weights(rng):
    """``weights(shape, dtype, scale=2.0, zero_fraction=0.05)``: random weights from this test's rng."""

    def make(shape, dtype, scale=2.0, zero_fraction=0.05):
        return random_weights(rng, shape, dtype, scale, zero_fraction)

    return make


@pytest.fixture(params=sorted(_cases.FACTORS))
def factors(request):
    """(l1, l2) over the shared cases: each term alone, both, and large factors."""
    return _cases.FACTORS[request.param]
