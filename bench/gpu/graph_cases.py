#!/usr/bin/env python
"""GPU checks of the by-value tables under CUDA graphs and streams, each against
fastpenalty.reference (run by bench/gpu/validate.sh; exits 1 on the first wrong result):

  capture-then-eager   the first call on a list is made inside a capture; then eager calls on the
                       same list, then replays: every result right (a captured-but-unreplayed
                       table used to be handed to the eager call)
  first-call-capture   a list longer than one launch (SLOTS tensors), first seen inside a capture,
                       replayed after many other lists came and went
  two-streams          two lists accumulated concurrently on two streams, many rounds
  small                value, accumulate, grad and grad_many on a small mixed list (the case the
                       compute-sanitizer tools run: `graph_cases.py small`)
"""
import sys

import ml_dtypes
import numpy as np
import torch

from fastpenalty import _cuda_ops, reference

TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64,
         np.dtype(np.float16): torch.float16, np.dtype(ml_dtypes.bfloat16): torch.bfloat16}
RTOL = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def cuda(a):
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).cuda()
    return torch.from_numpy(a.copy()).cuda()


def host(t):
    t = t.detach().cpu()
    return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16) if t.dtype == torch.bfloat16 else t.numpy()


def factors(v):
    return torch.tensor(v, dtype=torch.float64, device="cuda").reshape(-1)


def weights(rng, sizes, dtypes):
    return [rng.standard_normal(n).astype(dt) for n, dt in zip(sizes, dtypes)]


def check(name, got, want, rtol):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if not np.allclose(got, want, rtol=rtol, atol=0, equal_nan=True):
        bad = np.flatnonzero(~np.isclose(got, want, rtol=rtol, atol=0, equal_nan=True))[:5]
        print(f"FAIL {name}: at {bad.tolist()} got {got.ravel()[bad].tolist()} want {want.ravel()[bad].tolist()}")
        sys.exit(1)


def check_accumulated(name, gs, expected, dtype):
    for i, (g, e) in enumerate(zip(gs, expected)):
        check(f"{name}: g[{i}]", host(g), e, RTOL[dtype] * 4)


def capture_then_eager(rng):
    ws_np = weights(rng, [1000, 17, 0, 70001], [np.float32] * 4)
    ws = [cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    l1, l2 = factors([0.01, 0.02, 0.03, 0.04]), factors(0.5)
    _cuda_ops.value_many([torch.ones(3, device="cuda")], factors(1.0), factors(1.0))  # kernels loaded
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # the first call on this list
        total = _cuda_ops.accumulate_many_(ws, gs, l1, l2)
    # eager on the same list, before any replay
    for g in gs:
        g.zero_()
    eager = _cuda_ops.accumulate_many_(ws, gs, l1, l2)
    expected = [np.zeros_like(w) for w in ws_np]
    value = reference.accumulate_many_(ws_np, expected, [0.01, 0.02, 0.03, 0.04], 0.5)
    torch.cuda.synchronize()
    check("capture-then-eager: eager value", eager.item(), value, 1e-5)
    check_accumulated("capture-then-eager: eager", gs, expected, torch.float32)
    for g in gs:
        g.zero_()
    graph.replay()
    graph.replay()
    torch.cuda.synchronize()
    expected = [np.zeros_like(w) for w in ws_np]
    for _ in range(2):
        value = reference.accumulate_many_(ws_np, expected, [0.01, 0.02, 0.03, 0.04], 0.5)
    check("capture-then-eager: replayed value", total.item(), value, 1e-5)
    check_accumulated("capture-then-eager: replayed", gs, expected, torch.float32)
    print("capture-then-eager: ok")


def first_call_in_capture(rng):
    slots = _cuda_ops._load().SLOTS
    count = 2 * slots + 33
    sizes = rng.integers(0, 300, size=count)
    dtypes = [[np.float32, np.float16, ml_dtypes.bfloat16, np.float64][i % 4] for i in range(count)]
    ws_np = weights(rng, sizes, dtypes)
    ws = [cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    l1s = [float(x) for x in rng.random(count)]
    l1, l2 = factors(l1s), factors(0.25)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        total = _cuda_ops.accumulate_many_(ws, gs, l1, l2)
        outs = _cuda_ops.grad_many(ws, l1, l2)
    for n in range(200):  # other lists, other sizes: nothing they do may reach the graph
        _cuda_ops.value_many([torch.ones(n + 1, device="cuda")], factors(0.5), factors(0.5))
    for g in gs:
        g.zero_()
    graph.replay()
    torch.cuda.synchronize()
    expected = [np.zeros_like(w) for w in ws_np]
    value = reference.accumulate_many_(ws_np, expected, l1s, 0.25)
    check("first-call-capture: value", total.item(), value, 2e-3)
    for i, (w, g, o, e, a) in enumerate(zip(ws_np, gs, outs, expected, l1s)):
        dt = TORCH[w.dtype]
        check(f"first-call-capture: g[{i}]", host(g), e, RTOL[dt] * 4)
        check(f"first-call-capture: grad[{i}]", host(o), reference.grad(w, a, 0.25), RTOL[dt] * 4)
    print("first-call-capture: ok")


def two_streams(rng):
    lists = []
    for k in range(2):
        ws_np = weights(rng, [4097 + k, 1 << 20, 33], [np.float32, ml_dtypes.bfloat16, np.float16])
        lists.append((ws_np, [cuda(w) for w in ws_np]))
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    l1, l2 = factors(0.125), factors(0.0625)
    grads = [[torch.zeros_like(w) for w in ws] for _, ws in lists]
    values = [[], []]
    torch.cuda.synchronize()
    rounds = 20
    for _ in range(rounds):
        for k, s in enumerate(streams):
            with torch.cuda.stream(s):
                values[k].append(_cuda_ops.accumulate_many_(lists[k][1], grads[k], l1, l2))
    torch.cuda.synchronize()
    for k, (ws_np, _) in enumerate(lists):
        expected = [np.zeros_like(w) for w in ws_np]  # the same sequence of roundings, in the oracle
        for _ in range(rounds):
            value = reference.accumulate_many_(ws_np, expected, 0.125, 0.0625)
        for v in values[k]:
            check(f"two-streams: list {k} value", v.item(), value, 2e-3)
        for i, (w, g, e) in enumerate(zip(ws_np, grads[k], expected)):
            check(f"two-streams: list {k} g[{i}]", host(g), e, RTOL[TORCH[w.dtype]] * 4)
    print("two-streams: ok")


def small(rng):
    ws_np = weights(rng, [1, 7, 33, 4099, 0, 70001], [np.float32, np.float64, np.float16, ml_dtypes.bfloat16,
                                                       np.float32, np.float32])
    ws = [cuda(w) for w in ws_np]
    gs = [torch.zeros_like(w) for w in ws]
    l1, l2 = factors(0.013), factors(0.021)
    v = _cuda_ops.value_many(ws, l1, l2)
    a = _cuda_ops.accumulate_many_(ws, gs, l1, l2)
    outs = _cuda_ops.grad_many(ws, l1, l2)
    one = _cuda_ops.grad(ws[3], l1.reshape(()), l2.reshape(()))
    torch.cuda.synchronize()
    want = reference.value_many(ws_np, 0.013, 0.021)
    check("small: value", v.item(), want, 2e-3)
    check("small: accumulate value", a.item(), want, 2e-3)
    for i, (w, g, o) in enumerate(zip(ws_np, gs, outs)):
        ref = reference.grad(w, 0.013, 0.021)
        check(f"small: g[{i}]", host(g), ref, RTOL[TORCH[w.dtype]] * 4)
        check(f"small: grad_many[{i}]", host(o), ref, RTOL[TORCH[w.dtype]] * 4)
    check("small: grad", host(one), reference.grad(ws_np[3], 0.013, 0.021), 4e-2)
    print("small: ok")


CASES = {"capture-then-eager": capture_then_eager, "first-call-capture": first_call_in_capture,
         "two-streams": two_streams, "small": small}

if __name__ == "__main__":
    names = sys.argv[1:] or [n for n in CASES if n != "small"]
    for name in names:
        CASES[name](np.random.default_rng(7))
