"""torch.compile(fullgraph=True) through the custom ops: a training step adding penalty() to its
loss has no graph break, and changing factors (Penalty.set_factors, or tensor factors updated
between calls) never recompiles, proved with dynamo's counters. The "aot_eager" backend traces
forward and backward through the fake kernels like inductor does, without its code generation
time."""
import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import fastpenalty
from fastpenalty.torch import Penalty


@pytest.fixture
def compile_counter():
    torch._dynamo.reset()
    counters.clear()
    yield CompileCounterWithBackend("aot_eager")
    torch._dynamo.reset()


def assert_one_graph_no_breaks(counter):
    assert counter.frame_count == 1, f"compiled {counter.frame_count} times"
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.LayerNorm(16), nn.Linear(16, 1))


def test_training_step_with_penalty_compiles_once(compile_counter):
    model = make_model()
    twin = make_model()  # the same weights, trained eagerly
    groups = lambda m: [{"params": [m[0].weight], "l1": 1e-3}, {"params": [m[3].weight], "l2": 1e-2}]  # noqa: E731
    penalty, twin_penalty = Penalty(groups(model), l2=1e-3), Penalty(groups(twin), l2=1e-3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 1)

    def loss_fn(m, p):
        return nn.functional.mse_loss(m(x), y) + p()

    compiled = torch.compile(lambda: loss_fn(model, penalty), backend=compile_counter,
                             fullgraph=True)
    schedule = [dict(l1=2e-3), dict(l2=5e-2, group=1), dict(l1=0.0, l2=0.0), dict(l1=1e-2, group=0)]
    for change in schedule:
        for step_loss, m, o in ((compiled, model, opt), (lambda: loss_fn(twin, twin_penalty), twin, twin_opt)):
            o.zero_grad()
            loss = step_loss()
            loss.backward()
            o.step()
            if m is model:
                compiled_loss = loss.item()
            else:
                assert loss.item() == pytest.approx(compiled_loss, rel=1e-5)
        penalty.set_factors(**change)
        twin_penalty.set_factors(**change)
    assert_one_graph_no_breaks(compile_counter)
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_tensor_factors_do_not_recompile(compile_counter):
    w = torch.randn(50, 3, requires_grad=True)
    ws = [torch.randn(7), torch.randn(2, 2, dtype=torch.float64)]
    l1, l2s = torch.tensor(0.1), torch.tensor([0.2, 0.3], dtype=torch.float64)

    @torch.compile(backend=compile_counter, fullgraph=True)
    def fn(w, ws, l1, l2s):
        return fastpenalty.l1_l2(w, l1, 0.5) + fastpenalty.value_many(ws, l1, l2s)

    for a, b, c in [(0.1, 0.2, 0.3), (0.0, 1.5, 0.25), (4.0, 0.0, 0.0)]:
        l1.fill_(a)
        l2s.copy_(torch.tensor([b, c]))
        w.grad = None
        value = fn(w, ws, l1, l2s)
        value.backward()
        expected = fastpenalty.l1_l2(w.detach(), a, 0.5) + fastpenalty.value_many(ws, a, [b, c])
        assert value.item() == pytest.approx(expected.item(), rel=1e-6)
        torch.testing.assert_close(w.grad, fastpenalty.grad(w.detach(), a, 0.5))
    assert_one_graph_no_breaks(compile_counter)


def test_accumulate_compiles_once(compile_counter):
    model = make_model()
    penalty = Penalty(model, l1=1e-3, l2=1e-2)
    step = torch.compile(penalty.accumulate_, backend=compile_counter, fullgraph=True)
    for l2 in (1e-2, 0.5, 0.0):
        penalty.set_factors(l2=l2)
        model.zero_grad(set_to_none=True)
        model[0].weight.grad = torch.ones_like(model[0].weight)
        value = step()
        expected_grad = 1 + fastpenalty.grad(model[0].weight.detach(), 1e-3, l2)
        torch.testing.assert_close(model[0].weight.grad, expected_grad)
        torch.testing.assert_close(model[3].weight.grad,
                                   fastpenalty.grad(model[3].weight.detach(), 1e-3, l2))
        assert value.item() == pytest.approx(penalty().item(), rel=1e-6)
        assert model[0].bias.grad is None
    assert_one_graph_no_breaks(compile_counter)


# A Python float passed into a compiled function: dynamo specializes on its first value, then,
# when it changes, makes it a symbolic input. The functional forms turn that input into a factor
# tensor, so every later value reuses the second graph: 2 graphs for any number of values
# (tensor factors and Penalty: 1). README "torch.compile" states these counts from this test.
FLOAT_FACTOR_CASES = {
    "l1_l2": lambda w, ws, f: fastpenalty.l1_l2(w, f, 0.5),
    "grad": lambda w, ws, f: fastpenalty.grad(w, f, 0.5),
    "value_many": lambda w, ws, f: fastpenalty.value_many(ws, f, 0.5),
    "value_many per tensor": lambda w, ws, f: fastpenalty.value_many(ws, [f, 0.25], 0.5),
    "accumulate_many_": lambda w, ws, f: fastpenalty.accumulate_many_(
        ws, [torch.zeros_like(x) for x in ws], f, 0.5),
}


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("case", sorted(FLOAT_FACTOR_CASES))
def test_float_factors_compile_into_two_graphs(backend, case):
    if backend == "inductor" and case not in ("l1_l2", "accumulate_many_"):
        pytest.skip("inductor is slow here; aot_eager traces the same fake kernels")
    torch._dynamo.reset()
    counters.clear()
    counter = CompileCounterWithBackend(backend)
    fn = FLOAT_FACTOR_CASES[case]
    compiled = torch.compile(fn, backend=counter, fullgraph=True)
    w = torch.randn(9, dtype=torch.float64)
    ws = [torch.randn(7), torch.randn(3, 2, dtype=torch.float64)]
    for f in (0.1, 0.2, 0.35, 1.5, 0.0):
        got, expected = compiled(w, ws, f), fn(w, ws, f)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert counter.frame_count == 2, f"compiled {counter.frame_count} graphs for 5 values"
    assert not counters["graph_break"], dict(counters["graph_break"])
    with pytest.raises(Exception, match=r"l1(\[0\])? must be finite and >= 0"):
        compiled(w, ws, -1.0)  # a symbolic factor is still checked where the op runs
    torch._dynamo.reset()
