"""Penalty built from a module follows it: a parameter replaced under its name (setattr,
load_state_dict(assign=True), conversions that overwrite parameters, a replaced submodule) is
the one penalized on the next call, by __call__ and accumulate_ alike; a parameter that is gone
is a clear error. And the warning for using both forms (loss + penalty() and accumulate_()) in
one step."""
import warnings

import pytest
import torch
from torch import nn

import fastpenalty
from fastpenalty.torch import Penalty

L1, L2 = 0.01, 0.5


def make_model(device="cpu"):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).to(device)


def weights(model):
    return [model[0].weight, model[2].weight]


def assert_penalizes(penalty, model):
    """penalty() and accumulate_() speak of the module's current weights, nothing else."""
    current = weights(model)
    assert penalty.parameters == tuple(current)
    expected = fastpenalty.value_many([w.detach() for w in current], L1, L2)
    assert penalty().item() == expected.item()
    for w in current:
        w.grad = None
    assert penalty.accumulate_().item() == expected.item()
    for w in current:
        assert torch.equal(w.grad, fastpenalty.grad(w.detach(), L1, L2))


def test_setattr_of_a_new_parameter():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    penalty()
    model[2].weight = nn.Parameter(torch.full((3, 6), 4.0))
    assert_penalizes(penalty, model)


def test_load_state_dict_with_assign_after_meta_init():
    source = make_model()
    with torch.device("meta"):
        model = make_model("meta")
    penalty = Penalty(model, l1=L1, l2=L2)  # built before the weights exist, as often
    model.load_state_dict(source.state_dict(), assign=True)
    assert_penalizes(penalty, model)
    assert penalty().item() == fastpenalty.value_many(
        [w.detach() for w in weights(source)], L1, L2).item()


def test_half_that_overwrites_parameters():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    old = weights(model)
    previous = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        model.half()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(previous)
    assert all(w is not o for w, o in zip(weights(model), old))
    assert_penalizes(penalty, model)
    assert model[0].weight.grad.dtype == torch.float16


def test_replaced_submodule():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    model[0] = nn.Linear(4, 6)
    assert_penalizes(penalty, model)


def test_in_place_changes_of_the_same_parameter():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    model[0].weight.data = torch.full((6, 4), -2.0)  # same object, new storage
    assert_penalizes(penalty, model)
    model.double()  # same objects, new dtype
    assert penalty().dtype == torch.float64
    assert_penalizes(penalty, model)


def test_a_vanished_parameter_is_a_clear_error():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    model[2] = nn.Identity()
    with pytest.raises(RuntimeError, match=r"no longer has the parameter '2\.weight'"):
        penalty()
    model[2] = nn.Linear(6, 3, bias=False)
    assert_penalizes(penalty, model)
    del model[0].weight
    with pytest.raises(RuntimeError, match=r"'0\.weight'"):
        penalty.accumulate_()


def test_a_parameter_list_is_taken_as_given():
    model = make_model()
    penalty = Penalty(weights(model), l1=L1, l2=L2)
    old = weights(model)
    model[0].weight = nn.Parameter(torch.ones(6, 4))
    assert penalty.parameters == tuple(old)


# ------------------------------------------------------------------ both forms in one step

def step(model, penalty, form):
    x = torch.randn(5, 4)
    model.zero_grad()
    loss = model(x).square().mean()
    if form in ("call", "both"):
        loss = loss + penalty()
    loss.backward()
    if form in ("accumulate", "both"):
        penalty.accumulate_()


def test_both_forms_in_one_step_warn_once():
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    with pytest.warns(UserWarning, match="doubles the penalty's gradient") as record:
        step(model, penalty, "both")
        step(model, penalty, "both")
    assert len([r for r in record if "doubles" in str(r.message)]) == 1


@pytest.mark.parametrize("set_to_none", [True, False])
def test_one_form_per_step_does_not_warn(set_to_none):
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for form in ("call", "accumulate", "call", "call", "accumulate", "accumulate"):
            model.zero_grad(set_to_none=set_to_none)
            step(model, penalty, form)
        with torch.no_grad():  # a value for logging, next to accumulate_
            penalty()
        penalty.accumulate_()


def test_a_compiled_penalty_follows_a_replacement():
    from torch._dynamo.testing import CompileCounterWithBackend
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = make_model()
    penalty = Penalty(model, l1=L1, l2=L2)
    compiled = torch.compile(lambda: penalty(), backend=CompileCounterWithBackend("aot_eager"),
                             fullgraph=True)
    compiled()
    model[2].weight = nn.Parameter(torch.full((3, 6), 4.0))
    expected = fastpenalty.value_many([w.detach() for w in weights(model)], L1, L2)
    assert compiled().item() == expected.item()
    assert not counters["graph_break"]
    torch._dynamo.reset()
