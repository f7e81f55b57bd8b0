"""Resource failures: a thread pool whose threads cannot be created (pthread_create failing with
EAGAIN, as under RLIMIT_NPROC, which root ignores) runs on the threads it has, or on the caller,
and gives the oracle's results. Before the fix the first call raised and every later one hung."""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core_helpers")
CC = shutil.which("cc") or shutil.which("gcc")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or CC is None,
                                reason="needs Linux and a C compiler for the LD_PRELOAD shim")

CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    import fastpenalty
    from fastpenalty import reference

    w = np.linspace(-3, 3, 1 << 20).astype(np.float32)   # large enough to use the pool
    ws = [w, w[:1000], np.ones(300000, np.float64)]
    os.environ["FP_TEST_FAIL_PTHREAD_CREATE"] = sys.argv[1]  # from here on, threads fail to start
    def close(a, b):
        return abs(a - b) <= 2e-6 * abs(b)

    for _ in range(3):  # the second and later calls are the ones that used to deadlock
        assert close(fastpenalty.l1_l2(w, 0.01, 0.02), reference.l1_l2(w, 0.01, 0.02))
        g = np.zeros_like(w)
        v = fastpenalty.accumulate_(w, g, 0.01, 0.02)
        assert np.array_equal(g, fastpenalty.grad(w, 0.01, 0.02))
        assert close(v, reference.l1_l2(w, 0.01, 0.02))
        assert close(fastpenalty.value_many(ws, 0.01, 0.02), reference.value_many(ws, 0.01, 0.02))
    fastpenalty.set_num_threads(3)  # a new pool that cannot grow either
    assert fastpenalty.l1(w, 1.0) == np.float32(reference.l1(w, 1.0))
    del os.environ["FP_TEST_FAIL_PTHREAD_CREATE"]
    fastpenalty.set_num_threads(2)  # threads can be created again
    assert fastpenalty.l1(w, 1.0) == np.float32(reference.l1(w, 1.0))
    print("ok")
    """
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    out = tmp_path_factory.mktemp("shim") / "fail_pthread_create.so"
    subprocess.run([CC, "-shared", "-fPIC", "-O1", "-o", str(out),
                    os.path.join(HELPERS, "fail_pthread_create.c"), "-ldl"], check=True)
    return str(out)


@pytest.mark.parametrize("threads_that_start", [0, 1])
def test_pool_that_cannot_start_threads_never_hangs(shim, threads_that_start):
    env = dict(os.environ, LD_PRELOAD=shim, FASTPENALTY_NUM_THREADS="4", OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1")
    env.pop("FP_TEST_FAIL_PTHREAD_CREATE", None)
    result = subprocess.run([sys.executable, "-c", CHILD, str(threads_that_start)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"
