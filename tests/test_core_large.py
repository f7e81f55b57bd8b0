"""An array of more than 2^31 elements (fp16: 4 GiB): one value and one accumulate_ call, checked
exactly through marker elements on both sides of the 2^31 boundary and at the very end."""
import numpy as np
import pytest

import fastpenalty

N = 2**31 + 17
NEEDED_BYTES = 12 * 2**30
# Markers: exact fp16 values at positions a 32-bit index would get wrong.
MARKERS = {0: 1.0, 2**30 + 3: 16.0, 2**31 - 1: 2.0, 2**31: 4.0, N - 1: 8.0}


def mem_available_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


@pytest.mark.skipif(mem_available_bytes() < NEEDED_BYTES, reason="needs 12 GiB of available memory")
def test_value_and_accumulate_past_two_to_the_31_elements():
    # np.zeros maps untouched zero pages: only g, which the kernel writes, takes real memory.
    w = np.zeros(N, np.float16)
    positions = np.array(sorted(MARKERS), np.int64)
    w[positions] = [MARKERS[int(p)] for p in positions]
    abs_sum = sum(MARKERS.values())
    sq_sum = sum(v * v for v in MARKERS.values())

    assert fastpenalty.l1_l2(w, 1.0, 0.5) == abs_sum + 0.5 * sq_sum

    g = np.zeros(N, np.float16)
    assert fastpenalty.accumulate_(w, g, 1.0, 0.5) == abs_sum + 0.5 * sq_sum
    # grad = sign(w) + w: 1 + marker at the markers, +0.0 everywhere else.
    np.testing.assert_array_equal(g[positions].astype(np.float64), 1.0 + w[positions].astype(np.float64))
    assert np.count_nonzero(g.view(np.uint16)) == len(MARKERS)
