"""Determinism: bit-identical values and gradients across repeated runs and across 1, 2 and 3
threads (sizes that are not multiples of the chunk included), on the library's own workers and
on the process's OpenMP team (torch's libgomp); the thread-count controls; calls from several
Python threads at once; a forked child of a process that used the OpenMP team."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastpenalty

CHUNK = fastpenalty._core.CHUNK
SIZES = [CHUNK - 1, CHUNK + 1, 2 * CHUNK - 1, 5 * CHUNK + 123, 16 * CHUNK, 1000003]


def run_everything(w, ws):
    """Every operation once; the results as bytes/floats that must match exactly."""
    out = [fastpenalty.l1(w, 0.013), fastpenalty.l2(w, 0.021), fastpenalty.l1_l2(w, 0.013, 0.021)]
    out.append(fastpenalty.grad(w, 0.013, 0.021).tobytes())
    g = np.linspace(-1, 1, w.size).astype(w.dtype)
    out += [fastpenalty.accumulate_(w, g, 0.013, 0.021), g.tobytes()]
    out.append(fastpenalty.value_many(ws, [0.013] * len(ws), [0.021] * len(ws)))
    gs = [np.ones_like(x) for x in ws]
    out.append(fastpenalty.accumulate_many_(ws, gs, 0.013, 0.021))
    out += [x.tobytes() for x in gs]
    return out


@pytest.mark.parametrize("n", SIZES)
def test_bit_identical_for_1_2_and_3_threads(isa, float_dtype, n, weights, set_threads):
    w = weights(n, float_dtype)
    ws = [weights(m, float_dtype) for m in (n, 7, 3 * CHUNK + 1, 0, CHUNK)]
    results = {}
    for threads in (1, 2, 3):
        set_threads(threads)
        assert fastpenalty.get_num_threads() == threads
        results[threads] = run_everything(w, ws)
    assert results[2] == results[1]
    assert results[3] == results[1]


def test_mixed_dtype_list_bit_identical_across_thread_counts(isa, weights, set_threads):
    ws = [weights(CHUNK * k + 17, dt) for k in range(6) for dt in (np.float32, np.float64, np.float16)]
    values = set()
    for threads in (1, 2, 3):
        set_threads(threads)
        values.add(fastpenalty.value_many(ws, 0.013, 0.021))
    assert len(values) == 1


def test_repeated_runs_are_bit_identical(isa, float_dtype, weights):
    w = weights(5 * CHUNK + 123, float_dtype)
    ws = [w, weights(100, float_dtype), weights(2 * CHUNK + 3, float_dtype)]
    first = run_everything(w, ws)
    for _ in range(4):
        assert run_everything(w, ws) == first


def test_set_and_get_num_threads(set_threads):
    for threads in (1, 3, 2):
        set_threads(threads)
        assert fastpenalty.get_num_threads() == threads


def test_env_var_sets_the_thread_count():
    env = dict(os.environ, FASTPENALTY_NUM_THREADS="3")
    code = "import fastpenalty; print(fastpenalty.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def one_round(w):
    g = np.zeros_like(w)
    v = fastpenalty.accumulate_(w, g, 0.013, 0.021)
    return v, g.tobytes(), fastpenalty.l1_l2(w, 0.013, 0.021)


def test_concurrent_calls_from_python_threads(weights):
    # The core releases the GIL: several Python threads may share the pool at once.
    ws = [weights(3 * CHUNK + 11 * i, np.float32) for i in range(6)]
    expected = [one_round(w) for w in ws]
    got = [None] * len(ws)

    def work(i):
        got[i] = [one_round(ws[i]) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(ws))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(ws)):
        assert all(r == expected[i] for r in got[i])


@pytest.fixture
def openmp_in_process():
    """torch imported, so its libgomp is in the process's global scope; the OpenMP route and
    torch's thread count are restored after the test."""
    torch = pytest.importorskip("torch")
    if not sys.platform.startswith("linux"):
        pytest.skip("torch's OpenMP runtime is libgomp on Linux only")
    torch_threads = torch.get_num_threads()
    try:
        yield fastpenalty._core
    finally:
        fastpenalty._core.use_openmp(True)
        torch.set_num_threads(torch_threads)


@pytest.mark.parametrize("threads", [2, 3])
def test_openmp_team_and_own_workers_give_the_same_bits(openmp_in_process, weights, set_threads, threads):
    import torch

    core = openmp_in_process
    set_threads(threads)
    torch.set_num_threads(threads)
    w = weights(5 * CHUNK + 123, np.float32)
    ws = [weights(m, dt) for m in (3 * CHUNK + 1, CHUNK, 7) for dt in (np.float32, np.float64, np.float16)]
    results = {}
    for route, enabled in (("openmp", True), ("threads", False)):
        core.use_openmp(enabled)
        results[route] = run_everything(w, ws)
        assert core.last_pool() == route
        prox_w = [x.copy() for x in ws]
        results[route].append(fastpenalty.prox_many_(prox_w, 0.1, 0.013, 0.021))
        results[route] += [x.tobytes() for x in prox_w]
        assert core.last_pool() == route
    assert results["openmp"] == results["threads"]


def test_more_threads_than_torchs_team_run_on_the_library_workers(openmp_in_process, weights, set_threads):
    # a larger team would make libgomp create threads, and it ends the process when it cannot
    import torch

    core = openmp_in_process
    w = weights(12 * CHUNK + 123, np.float32)  # enough for several parts
    torch.set_num_threads(2)
    set_threads(2)
    team = fastpenalty.l1_l2(w, 0.013, 0.021)
    assert core.last_pool() == "openmp"
    set_threads(3)
    assert fastpenalty.l1_l2(w, 0.013, 0.021) == team
    assert core.last_pool() == "threads"
    torch.set_num_threads(3)
    assert fastpenalty.l1_l2(w, 0.013, 0.021) == team
    assert core.last_pool() == "openmp"


FORK_CHILD = """
import os, sys, numpy as np, torch, fastpenalty
from fastpenalty import _core
fastpenalty.set_num_threads(2)
w = np.linspace(-1, 1, 40 * fastpenalty._core.CHUNK, dtype=np.float32)
parent = fastpenalty.l1_l2(w, 0.013, 0.021)
assert _core.last_pool() == "openmp", _core.last_pool()
pid = os.fork()
if pid == 0:
    _core.use_openmp(True)  # cannot switch it on in a child
    ok = fastpenalty.l1_l2(w, 0.013, 0.021) == parent and _core.last_pool() == "threads"
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_runs_on_the_library_workers(openmp_in_process):
    # libgomp's team does not survive fork(): a child that entered it would hang.
    out = subprocess.run([sys.executable, "-c", FORK_CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


TORCH_LATER = """
import numpy as np, fastpenalty
from fastpenalty import _core
fastpenalty.set_num_threads(2)
w = np.linspace(-1, 1, 40 * _core.CHUNK, dtype=np.float32)
before = fastpenalty.l1_l2(w, 0.013, 0.021)
print(_core.last_pool())
import torch
torch.sum(torch.ones(10))
assert fastpenalty.l1_l2(w, 0.013, 0.021) == before
print(_core.last_pool())
"""


def test_torch_imported_after_the_first_call_is_still_found(openmp_in_process):
    out = subprocess.run([sys.executable, "-c", TORCH_LATER], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["threads", "openmp"]
