"""The proximal step for torch tensors: fastpenalty.prox_ / prox_many_ against the NumPy oracle
(dtypes, odd sizes, layouts, factor kinds), the fastpenalty::prox_many_ op (opcheck, no graph
break and one graph under torch.compile with a changing tensor lr), refused calls that leave
memory untouched, Penalty.prox_ and Penalty.attach_prox in real training loops (SGD, Adam, an LR
scheduler, param groups that differ, a replaced parameter, hook removal). CUDA tests skip
without a GPU."""
import math

import ml_dtypes
import numpy as np
import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters
from torch.library import opcheck

import fastpenalty
from fastpenalty import reference
from fastpenalty.torch import Penalty
from fastpenalty.torch.functional import prox_many_ as functional_prox_many_

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
SIZES = (0, 1, 2, 3, 5, 7, 15, 17, 31, 33, 63, 65, 97, 16384 * 2 + 3)
RTOL = {torch.float32: 3 * 2.0**-23, torch.float64: 3 * 2.0**-52, torch.float16: 3 * 2.0**-10,
        torch.bfloat16: 3 * 2.0**-7}
ATOL = {torch.float32: 2.0**-149, torch.float64: 5e-324, torch.float16: 2.0**-24,
        torch.bfloat16: 2.0**-133}
VALUE_RTOL = {torch.float64: 1e-12}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def oracle(ws, lr, l1, l2):
    """(results as NumPy arrays, value, zeros) from fastpenalty.reference."""
    arrays = [to_numpy(w).reshape(-1) for w in ws]
    value, zeros = reference.prox_many_(arrays, lr, l1, l2)
    return arrays, value, zeros


def random_tensor(gen, n, dtype, device="cpu"):
    x = torch.rand(n, generator=gen, dtype=torch.float64) * 4 - 2
    x[::11] = 0.0
    return x.to(dtype).to(device)


def assert_matches(ws, before, expected, lrs, l1s):
    for w, b, e, lr, l1 in zip(ws, before, expected, lrs, l1s):
        a = to_numpy(w).reshape(-1).astype(np.float64)
        e = e.astype(np.float64)
        scale = np.abs(to_numpy(b).reshape(-1).astype(np.float64)) + lr * l1
        assert np.array_equal(np.isnan(a), np.isnan(e))
        ok = np.isnan(e) | (np.abs(a - e) <= RTOL[w.dtype] * scale + ATOL[w.dtype])
        assert ok.all(), f"{(~ok).sum()} elements differ ({w.dtype})"


def check_result(result, ws, expected_value, expected_zeros, device="cpu"):
    value, zeros = result
    assert isinstance(result, fastpenalty.ProxResult)
    fp64 = bool(ws) and all(w.dtype == torch.float64 for w in ws)
    assert value.dtype == (torch.float64 if fp64 else torch.float32) and value.dim() == 0
    assert zeros.dtype == torch.int64 and zeros.dim() == 0
    assert value.device.type == zeros.device.type == torch.device(device).type
    assert not value.requires_grad
    assert int(zeros) == expected_zeros == sum(int((w == 0).sum()) for w in ws)
    rtol = VALUE_RTOL.get(value.dtype, 2e-6)
    v = float(value)
    if math.isnan(expected_value):
        assert math.isnan(v)
    else:
        assert abs(v - expected_value) <= rtol * abs(expected_value) + 2.0**-149


# ------------------------------------------------------------------------------- functional

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", SIZES)
def test_prox_matches_reference(dtype, n):
    gen = torch.Generator().manual_seed(n)
    w = random_tensor(gen, n, dtype)
    before = w.clone()
    expected, value, zeros = oracle([w], 0.1, 0.6, 0.3)
    result = fastpenalty.prox_(w, 0.1, l1=0.6, l2=0.3)
    assert_matches([w], [before], expected, [0.1], [0.6])
    check_result(result, [w], value, zeros)


def test_prox_many_mixed_dtypes_and_factor_kinds():
    gen = torch.Generator().manual_seed(1)
    ws = [random_tensor(gen, n, dt) for n, dt in zip((33, 7, 65, 0, 17), DTYPES + (torch.float32,))]
    lrs = [0.05, 0.1, 0.2, 0.3, 0.4]
    kinds = {
        "numbers": (lrs, 0.5, [0.1, 0.0, 0.2, 0.3, 0.0]),
        "1-dim tensors": (torch.tensor(lrs), torch.tensor(0.5), torch.tensor([0.1, 0.0, 0.2, 0.3, 0.0])),
        "list of tensors": ([torch.tensor(v) for v in lrs], 0.5, 0.2),
        "0-dim float32 tensor": (torch.tensor(0.1, dtype=torch.float32), 0.5, 0.2),
    }
    for lr, l1, l2 in kinds.values():
        ws_k = [w.clone() for w in ws]
        as_list = [(f.tolist() if isinstance(f, torch.Tensor) else
                    [float(v) for v in f] if isinstance(f, list) else f) for f in (lr, l1, l2)]
        expected, value, zeros = oracle(ws_k, *as_list)
        per = [v if isinstance(v, list) else [v] * len(ws) for v in as_list]
        result = fastpenalty.prox_many_(ws_k, lr, l1, l2)
        assert_matches(ws_k, ws, expected, per[0], per[1])
        check_result(result, ws_k, value, zeros)


def test_op_and_direct_path_agree_bit_for_bit():
    gen = torch.Generator().manual_seed(2)
    ws = [random_tensor(gen, n, dt) for n, dt in zip((33, 7, 65, 9), DTYPES)]
    a, b = [w.clone() for w in ws], [w.clone() for w in ws]
    ra = fastpenalty.prox_many_(a, 0.1, 0.4, 0.2)
    f64 = torch.float64
    rb = torch.ops.fastpenalty.prox_many_(b, torch.tensor([0.1], dtype=f64),
                                          torch.tensor([0.4], dtype=f64),
                                          torch.tensor([0.2], dtype=f64), False)
    assert [x.view(-1).view(torch.int8).tolist() for x in a] == \
        [y.view(-1).view(torch.int8).tolist() for y in b]
    assert float(ra.value) == float(rb[0]) and int(ra.zeros) == int(rb[1])


def test_layouts_transposed_strided_and_negative_views():
    gen = torch.Generator().manual_seed(3)
    base = random_tensor(gen, 48, torch.float32).reshape(6, 8)
    cases = {"transposed": lambda t: t.t(), "strided": lambda t: t[:, ::2],
             "negative": lambda t: torch._neg_view(t)}
    for name, view in cases.items():
        t = base.clone()
        v = view(t)
        logical = v.clone()
        expected, value, zeros = oracle([logical], 0.1, 0.5, 0.2)
        result = fastpenalty.prox_(v, 0.1, 0.5, 0.2)
        assert_matches([v.contiguous()], [logical], expected, [0.1], [0.5])
        check_result(result, [v], value, zeros)
        if name == "strided":  # the columns in between stay as they were
            assert torch.equal(t[:, 1::2], base[:, 1::2])


def test_parameters_that_require_grad_are_updated_under_grad_mode():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(40))
    version = p._version
    before = p.detach().clone()
    expected, value, zeros = oracle([before], 0.1, 1.0, 0.0)
    result = fastpenalty.prox_(p, 0.1, l1=1.0)  # grad mode on: no error, nothing recorded
    assert p.requires_grad and p.grad_fn is None and p.is_leaf
    assert p._version > version
    assert_matches([p], [before], expected, [0.1], [1.0])
    check_result(result, [p], value, zeros)
    (p * 2).sum().backward()  # p stays a usable leaf
    assert torch.equal(p.grad, torch.full_like(p, 2.0))


class _PassThrough(torch.overrides.TorchFunctionMode):
    """A mode that sees every call (as tracing would): the step takes the custom op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_through_the_op_parameters_that_require_grad_give_a_detached_result():
    torch.manual_seed(1)
    p = nn.Parameter(torch.randn(40))
    twin = p.detach().clone()
    with _PassThrough():
        result = fastpenalty.prox_(p, 0.1, l1=1.0, l2=0.5)
    direct = fastpenalty.prox_(twin, 0.1, l1=1.0, l2=0.5)
    assert not result.value.requires_grad and result.value.grad_fn is None
    assert torch.equal(p.detach(), twin)
    assert float(result.value) == float(direct.value) and int(result.zeros) == int(direct.zeros)
    assert p.is_leaf and p.grad_fn is None


def test_a_saved_tensor_modified_by_prox_is_caught_by_autograd():
    p = nn.Parameter(torch.randn(10))
    loss = (p * p).sum()  # saves p
    fastpenalty.prox_(p, 0.1, l1=1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


# ----------------------------------------------------------------------------------- errors

def _refused(ws, call, error, match):
    before = [w.detach().clone() for w in ws]
    with pytest.raises(error, match=match):
        call()
    for w, b in zip(ws, before):
        assert torch.equal(w.detach().view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))


def test_refused_calls_leave_memory_untouched():
    gen = torch.Generator().manual_seed(4)
    ws = [random_tensor(gen, 33, torch.float32), random_tensor(gen, 9, torch.float64)]
    call = fastpenalty.prox_many_
    _refused(ws, lambda: call(ws, -0.1, 0.5), ValueError, r"\blr\b")
    _refused(ws, lambda: call(ws, math.nan, 0.5), ValueError, r"\blr\b")
    _refused(ws, lambda: call(ws, torch.tensor(-1.0), 0.5), ValueError, r"\blr\b")
    _refused(ws, lambda: call(ws, torch.tensor([0.1, -0.1]), 0.5), ValueError, r"lr\[1\]")
    _refused(ws, lambda: call(ws, torch.tensor([0.1, 0.2, 0.3]), 0.5), ValueError, "lr must hold")
    _refused(ws, lambda: call(ws, 0.1, math.inf), ValueError, r"\bl1\b")
    _refused(ws, lambda: call(ws, 0.1, 0.5, -2.0), ValueError, r"\bl2\b")
    _refused(ws, lambda: call(ws, 1e200, 1e200), ValueError, r"lr\*l1")
    _refused(ws, lambda: call(ws, torch.tensor(0.1, requires_grad=True), 0.5), ValueError,
             "requires grad")
    bad = ws[1].clone()
    bad[3] = math.nan
    _refused(ws + [bad], lambda: call(ws + [bad], 0.1, 0.5, check_finite=True), ValueError,
             r"ws\[2\] contains NaN or Inf")
    _refused(ws, lambda: call(ws + [torch.arange(3)], 0.1, 0.5), TypeError, r"ws\[2\] has dtype")
    base = random_tensor(gen, 20, torch.float32)
    _refused([base], lambda: call([base[:12], base[8:]], 0.1, 0.5), ValueError,
             r"ws\[0\] and ws\[1\] share memory")
    _refused([base], lambda: call([base, base[5:10]], 0.1, 0.5), ValueError, "share memory")
    small = random_tensor(gen, 4, torch.float32)
    _refused([small], lambda: fastpenalty.prox_(small.expand(3, 4), 0.1, 0.5), ValueError,
             "may share memory")
    with torch.inference_mode():
        inf_t = torch.ones(5)
    _refused([inf_t], lambda: fastpenalty.prox_(inf_t, 0.1, 0.5), ValueError, "inference tensor")
    _refused(ws, lambda: call(ws[0], 0.1, 0.5), TypeError, "single")
    _refused(ws, lambda: functional_prox_many_(ws[0], 0.1, 0.5), TypeError, "single tensor")
    _refused([bad], lambda: fastpenalty.prox_(bad, 0.1, 0.5, check_finite=True), ValueError,
             r"\bw contains NaN")


def test_refused_calls_through_the_op_leave_memory_untouched():
    gen = torch.Generator().manual_seed(5)
    ws = [random_tensor(gen, 33, torch.float32), random_tensor(gen, 9, torch.float32)]
    f64 = torch.float64

    def op(lr, l1=0.5, check_finite=False, tensors=ws):
        return torch.ops.fastpenalty.prox_many_(tensors, torch.tensor(lr, dtype=f64),
                                                torch.tensor([l1], dtype=f64),
                                                torch.tensor([0.0], dtype=f64), check_finite)

    _refused(ws, lambda: op([-0.1]), ValueError, r"\blr\b")
    _refused(ws, lambda: op([0.1, math.inf]), ValueError, r"lr\[1\]")
    _refused(ws, lambda: op([0.1], l1=-1.0), ValueError, r"\bl1\b")
    ws[1][2] = math.inf
    _refused(ws, lambda: op([0.1], check_finite=True), ValueError, r"ws\[1\] contains")


# ---------------------------------------------------------------------------- op and compile

def test_opcheck():
    gen = torch.Generator().manual_seed(6)
    f64 = torch.float64
    for dtype in DTYPES:
        ws = [random_tensor(gen, 17, dtype), random_tensor(gen, 6, dtype).reshape(2, 3)]
        opcheck(torch.ops.fastpenalty.prox_many_,
                (ws, torch.tensor([0.1, 0.2], dtype=f64), torch.tensor([0.5], dtype=f64),
                 torch.tensor([0.1], dtype=f64), False))
    opcheck(torch.ops.fastpenalty.prox_many_,
            ([], torch.tensor([0.1], dtype=f64), torch.tensor([0.5], dtype=f64),
             torch.tensor([0.1], dtype=f64), False))


@pytest.fixture
def compile_counter():
    torch._dynamo.reset()
    counters.clear()
    yield CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()


# a 0-dim float32 tensor (an optimizer's tensor lr) and a 1-dim float64 one with one lr per tensor
@pytest.mark.parametrize("lr", [torch.tensor(0.1), torch.tensor([0.1, 0.2], dtype=torch.float64)],
                         ids=["0-dim", "per-tensor"])
def test_compiled_prox_with_a_changing_tensor_lr_is_one_graph(compile_counter, lr):
    gen = torch.Generator().manual_seed(7)
    ws = [random_tensor(gen, 65, torch.float32), random_tensor(gen, 7, torch.float32)]
    twins = [w.clone() for w in ws]

    def step(tensors, lr):
        result = fastpenalty.prox_many_(tensors, lr, 0.5, 0.1)
        return result.value, result.zeros

    compiled = torch.compile(step, backend=compile_counter, fullgraph=True)
    for new_lr in (0.1, 0.02, 0.3, 0.05):
        lr.fill_(new_lr)
        value, zeros = compiled(ws, lr)
        twin_value, twin_zeros = step(twins, lr)
        assert all(torch.equal(a, b) for a, b in zip(ws, twins))
        assert float(value) == float(twin_value) and int(zeros) == int(twin_zeros)
    assert compile_counter.frame_count == 1, f"compiled {compile_counter.frame_count} times"
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1


def test_compiled_penalty_prox_is_one_graph(compile_counter):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    penalty = Penalty(model, l1=0.5)
    lr = torch.tensor(0.1)
    compiled = torch.compile(lambda: penalty.prox_(lr).zeros, backend=compile_counter,
                             fullgraph=True)
    for new_lr in (0.01, 0.02, 0.04):
        lr.fill_(new_lr)
        zeros = compiled()
    assert int(zeros) == sum(int((p == 0).sum()) for p in penalty.parameters)
    assert compile_counter.frame_count == 1
    assert not counters["graph_break"], dict(counters["graph_break"])


# ----------------------------------------------------------------------------------- Penalty

def two_layer(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))


def test_penalty_prox_uses_each_groups_factors():
    model = two_layer()
    w0, w1 = model[0].weight, model[2].weight
    before = [w0.detach().clone(), w1.detach().clone()]
    penalty = Penalty([{"params": [w0], "l1": 0.5}, {"params": [w1], "l1": 0.1, "l2": 2.0}])
    expected, value, zeros = oracle(before, 0.2, [0.5, 0.1], [0.0, 2.0])
    result = penalty.prox_(0.2)
    assert_matches([w0, w1], before, expected, [0.2, 0.2], [0.5, 0.1])
    check_result(result, [w0, w1], value, zeros)
    assert torch.equal(model[0].bias, two_layer()[0].bias)  # not selected: untouched


def test_penalty_prox_follows_a_replaced_parameter():
    model = two_layer()
    penalty = Penalty(model, l1=1.0)
    old = model[0].weight
    model[0].weight = nn.Parameter(torch.full((10, 6), 0.05))
    old_before = old.detach().clone()
    result = penalty.prox_(0.1)  # threshold 0.1: every new weight becomes 0
    assert bool((model[0].weight == 0).all())
    assert torch.equal(old, old_before)
    assert int(result.zeros) >= 60


def test_penalty_prox_names_the_parameter():
    model = two_layer()
    penalty = Penalty(model, l1=1.0)
    with pytest.raises(ValueError, match=r"lr\[1\]"):
        penalty.prox_([0.1, -1.0])
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"2\.weight contains NaN"):
        fastpenalty.torch._prox._prox_named(penalty.parameters, 0.1, 0.5, 0.0, True,
                                            list(penalty.names))


def _data(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(32, 6, generator=gen), torch.randint(0, 3, (32,), generator=gen)


def _step(model, optimizer, x, y):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_attach_prox_with_sgd_and_a_scheduler_reads_lr_every_step():
    model, twin = two_layer(), two_layer()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.3)
    twin_sched = torch.optim.lr_scheduler.StepLR(twin_opt, step_size=2, gamma=0.3)
    penalty, twin_penalty = Penalty(model, l1=0.05), Penalty(twin, l1=0.05)
    handle = penalty.attach_prox(opt)
    x, y = _data()
    seen = []
    for _ in range(6):
        _step(model, opt, x, y)
        _step(twin, twin_opt, x, y)
        lr = twin_opt.param_groups[0]["lr"]
        seen.append(lr)
        fastpenalty.prox_many_(list(twin_penalty.parameters), lr, 0.05)  # by hand
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)
        sched.step()
        twin_sched.step()
    assert len(set(seen)) == 3  # the scheduler changed lr twice
    zeros = sum(int((p == 0).sum()) for p in penalty.parameters)
    assert zeros > 0
    handle.remove()
    _step(model, opt, x, y)
    _step(twin, twin_opt, x, y)  # no prox for either any more
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters()))


def test_attach_prox_zeros_appear_exactly_where_subgradient_gives_none():
    x, y = _data(2)
    results = {}
    for form in ("subgradient", "prox"):
        model = two_layer(3)
        opt = torch.optim.SGD(model.parameters(), lr=0.2)
        penalty = Penalty(model, l1=0.02)
        if form == "prox":
            penalty.attach_prox(opt)
        for _ in range(60):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            if form == "subgradient":
                loss = loss + penalty()
            loss.backward()
            opt.step()
        results[form] = sum(int((p == 0).sum()) for p in penalty.parameters)
    assert results["prox"] > 10 * max(results["subgradient"], 1)


def test_attach_prox_with_adam_and_a_tensor_lr():
    model, twin = two_layer(), two_layer()
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.05), foreach=False)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=torch.tensor(0.05), foreach=False)
    penalty, twin_penalty = Penalty(model, l1=0.1), Penalty(twin, l1=0.1)
    penalty.attach_prox(opt)
    x, y = _data(3)
    for i in range(4):
        opt.param_groups[0]["lr"].fill_(0.05 / (i + 1))
        twin_opt.param_groups[0]["lr"].fill_(0.05 / (i + 1))
        _step(model, opt, x, y)
        _step(twin, twin_opt, x, y)
        lr = twin_opt.param_groups[0]["lr"]  # float32: the hook must read this, not 0.05 / (i + 1)
        fastpenalty.prox_many_(list(twin_penalty.parameters), float(lr), 0.1)
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)


def test_attach_prox_with_adam_gives_exact_zeros():
    x, y = _data(6)
    zeros = {}
    for form in ("subgradient", "prox"):
        model = two_layer(4)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        # Adam moves every weight by about lr per step: the threshold lr*l1 must be of that size
        penalty = Penalty(model, l1=1.0)
        if form == "prox":
            penalty.attach_prox(opt)
        for _ in range(200):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            if form == "subgradient":
                loss = loss + penalty()
            loss.backward()
            opt.step()
        zeros[form] = sum(int((p == 0).sum()) for p in penalty.parameters)
    assert zeros["prox"] > 10 * max(zeros["subgradient"], 1), zeros


def test_attach_prox_with_param_groups_that_differ():
    model, twin = two_layer(), two_layer()

    def opt_groups(m):  # lr per layer, each group with a weight and a bias
        return [{"params": [m[0].weight, m[0].bias], "lr": 0.3},
                {"params": [m[2].weight, m[2].bias], "lr": 0.05}]

    def penalty_groups(m):  # l1 for one weight, l2 for the other, mixed across lr groups
        return [{"params": [m[2].weight], "l1": 0.2}, {"params": [m[0].weight], "l2": 0.5, "l1": 0.01}]

    opt, twin_opt = torch.optim.SGD(opt_groups(model)), torch.optim.SGD(opt_groups(twin))
    Penalty(penalty_groups(model)).attach_prox(opt)
    x, y = _data(4)
    for _ in range(3):
        _step(model, opt, x, y)
        _step(twin, twin_opt, x, y)
        fastpenalty.prox_many_([twin[2].weight, twin[0].weight], [0.05, 0.3], [0.2, 0.01],
                               [0.0, 0.5])
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)


def test_attach_prox_refuses_a_parameter_the_optimizer_lacks():
    model = two_layer()
    opt = torch.optim.SGD(model[0].parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"does not hold 2\.weight"):
        Penalty(model, l1=0.1).attach_prox(opt)
    assert not opt._optimizer_step_post_hooks


def test_attach_prox_follows_a_replaced_parameter():
    model = two_layer()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    penalty = Penalty(model, l1=1.0)
    penalty.attach_prox(opt)
    x, y = _data(5)
    _step(model, opt, x, y)
    model[0].weight = nn.Parameter(torch.full((10, 6), 0.01))
    with pytest.raises(ValueError, match=r"does not hold 0\.weight"):
        _step(model, opt, x, y)  # the new parameter is not in the optimizer
    opt.add_param_group({"params": [model[0].weight], "lr": 2.0})
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    opt.zero_grad()
    opt.step()  # no gradients: only the prox acts, with the new group's lr 2.0 (threshold 2)
    assert bool((model[0].weight == 0).all())


# ------------------------------------------------------------------------------------- CUDA

@cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_cuda_matches_reference(dtype):
    gen = torch.Generator().manual_seed(8)
    ws = [random_tensor(gen, n, dtype) for n in (1, 33, 16384 * 3 + 5, 0)]
    expected, value, zeros = oracle(ws, 0.1, 0.5, 0.2)
    dev = [w.cuda() for w in ws]
    result = fastpenalty.prox_many_(dev, 0.1, 0.5, 0.2)
    assert_matches([w.cpu() for w in dev], ws, expected, [0.1] * 4, [0.5] * 4)
    check_result(result, dev, value, zeros, device="cuda")
    cpu = [w.clone() for w in ws]
    fastpenalty.prox_many_(cpu, 0.1, 0.5, 0.2)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, dev))  # the same per-element math


@cuda
def test_cuda_tensor_lr_and_attach_prox():
    model = two_layer().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    penalty = Penalty(model, l1=0.05)
    penalty.attach_prox(opt)
    x, y = (t.cuda() for t in _data())
    for _ in range(5):
        _step(model, opt, x, y)
    assert sum(int((p == 0).sum()) for p in penalty.parameters) > 0
    r = penalty.prox_(torch.tensor(0.1, device="cuda", dtype=torch.float64))
    assert r.value.is_cuda and r.zeros.is_cuda


def test_penalty_prox_leaves_frozen_parameters_untouched():
    model = two_layer()
    model[0].weight.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    penalty = Penalty(model, l1=0.1)
    stepped = model[2].weight.detach().clone()
    result = penalty.prox_(1.0)
    assert torch.equal(model[0].weight, frozen)  # as an optimizer leaves it
    expected = stepped.numpy()
    fastpenalty.reference.prox_(expected, 1.0, 0.1)
    torch.testing.assert_close(model[2].weight.detach(), torch.from_numpy(expected))
    assert int(result.zeros) == int((model[2].weight == 0).sum())
    model[2].weight.requires_grad_(False)
    empty = penalty.prox_(1.0)  # nothing left to step
    assert int(empty.zeros) == 0 and float(empty.value) == 0.0


def test_attach_prox_with_a_frozen_backbone_outside_the_optimizer():
    model = two_layer()
    model[0].weight.requires_grad_(False)
    model[0].bias.requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    penalty = Penalty(model, l1=0.3)
    penalty.attach_prox(opt)  # the frozen 0.weight is not in the optimizer: skipped, not refused
    x, y = _data(7)
    for _ in range(3):
        _step(model, opt, x, y)
    assert torch.equal(model[0].weight, frozen)
    assert int((model[2].weight == 0).sum()) > 0
    model[0].weight.requires_grad_(True)  # unfrozen but still not in the optimizer
    with pytest.raises(ValueError, match=r"does not hold 0\.weight"):
        _step(model, opt, x, y)


def test_eager_cpu_step_is_read_in_cpp_and_follows_a_changed_storage():
    from fastpenalty.torch import _prox

    ws = [torch.full((5,), 2.0), torch.full((3, 7), -3.0)]
    fastpenalty.prox_many_(ws, 1.0, 0.5)
    assert _prox._PLAN.was_served  # the C++ plan took the plain list
    fastpenalty.prox_many_(ws, 1.0, 0.5)
    assert torch.equal(ws[0], torch.full((5,), 1.0)) and torch.equal(ws[1], torch.full((3, 7), -2.0))
    old = ws[0].detach().clone()
    kept = ws[0].data
    ws[0].data = torch.full((9,), 0.25)  # same object, new storage and size
    result = fastpenalty.prox_many_(ws, 1.0, 0.5)
    assert _prox._PLAN.was_served
    assert torch.equal(ws[0], torch.zeros(9)) and torch.equal(kept, old)
    assert int(result.zeros) == 9
    assert float(result.value) == pytest.approx(0.5 * 1.5 * 21)


def test_eager_cpu_step_refusals_go_through_the_named_checks():
    w = torch.ones(4)
    with pytest.raises(ValueError, match="lr"):
        fastpenalty.prox_many_([w], -1.0, 0.5)
    with pytest.raises(ValueError):
        fastpenalty.prox_many_([w], 1e300, 1e300)  # lr*l1 overflows: refused before any write
    with pytest.raises(ValueError, match="overlap"):
        fastpenalty.prox_many_([w, w[1:]], 1.0, 0.5)
    assert torch.equal(w, torch.ones(4))
    with torch.inference_mode():
        t = torch.ones(3)
    with pytest.raises(ValueError, match="inference"):
        fastpenalty.prox_many_([t], 1.0, 0.5)  # an inference tensor outside inference mode
    assert torch.equal(t, torch.ones(3))
