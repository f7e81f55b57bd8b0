"""fastpenalty.torch.Penalty: which parameters it takes (module with exclude rules, parameter
lists, named pairs, optimizer-style groups), its value and gradients against the functional
forms, accumulate_ (creating p.grad, skipping frozen parameters), the optimizer hook,
set_factors, and parameters that are not contiguous."""
import pytest
import torch
from torch import nn

import fastpenalty
from fastpenalty._exclusion import is_excluded
from fastpenalty.torch import DEFAULT_EXCLUDE, Penalty


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.proj = nn.Linear(4, 6)
        self.ln_1 = nn.LayerNorm(6)  # a norm whose name does not say so: its type does
        self.norm_gate = nn.Linear(6, 6, bias=False)  # a Linear whose name says norm
        self.group = nn.GroupNorm(2, 6)
        self.head = nn.Linear(6, 10)
        self.head.weight = self.embed.weight  # tied


def test_module_default_exclude_drops_biases_and_norms():
    penalty = Penalty(Block(), l2=0.1)
    assert penalty.names == ("embed.weight", "conv.weight", "proj.weight")
    assert len(penalty) == 3 and penalty.num_groups == 1


def test_default_exclusion_is_the_rule_profile_applies():
    block = Block()
    expected = tuple(n for n, p in block.named_parameters() if not is_excluded(n, p.shape))
    assert Penalty(block).names == expected
    assert Penalty(block.named_parameters()).names == expected
    assert DEFAULT_EXCLUDE == (is_excluded,)
    with_embed = Penalty(block, exclude=(*DEFAULT_EXCLUDE, "embed")).names
    assert with_embed == tuple(n for n in expected if "embed" not in n)
    by_shape = Penalty(block, exclude=lambda name, shape: len(shape) != 2).names
    assert by_shape == ("embed.weight", "proj.weight", "norm_gate.weight")


def test_exclude_rules():
    block = Block()
    assert len(Penalty(block, exclude=()).parameters) == 13  # tied weight once
    assert len(Penalty(block, exclude=None).parameters) == 13
    names = Penalty(block, exclude=("bias", nn.Embedding, nn.BatchNorm2d)).names
    assert names == ("conv.weight", "proj.weight", "ln_1.weight", "norm_gate.weight",
                     "group.weight")
    assert Penalty(block, exclude="WEIGHT").names == tuple(
        n for n, _ in block.named_parameters() if "weight" not in n)
    with pytest.raises(TypeError, match="exclude entries"):
        Penalty(block, exclude=[3])


def test_parameter_lists_and_named_pairs():
    block = Block()
    assert len(Penalty(block.parameters())) == 13  # anonymous tensors: exclude does not apply
    named = Penalty(block.named_parameters())  # the default rule needs names and shapes only
    assert named.names == ("embed.weight", "conv.weight", "proj.weight")
    by_name = Penalty(block.named_parameters(), exclude=("bias", "norm"))  # no module types here
    assert by_name.names == ("embed.weight", "conv.weight", "bn.weight", "proj.weight",
                             "ln_1.weight", "group.weight")
    single = Penalty(block.proj.weight, l1=0.5)
    assert single.parameters == (block.proj.weight,)


def test_param_groups_with_their_own_factors():
    a, b, c = (nn.Parameter(torch.randn(n, dtype=torch.float64)) for n in (5, 7, 3))
    penalty = Penalty([{"params": [a, b], "l1": 0.1}, {"params": c, "l2": 0.4, "lr": 1.0}],
                      l1=0.01, l2=0.02)
    assert penalty.num_groups == 2
    assert penalty.factors(0) == (0.1, 0.02) and penalty.factors(1) == (0.01, 0.4)
    expected = fastpenalty.value_many([a, b, c], [0.1, 0.1, 0.01], [0.02, 0.02, 0.4])
    assert penalty().item() == expected.item()


def test_bad_constructions_are_refused():
    p = nn.Parameter(torch.randn(3))
    with pytest.raises(ValueError, match="appears twice"):
        Penalty([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="appears twice"):
        Penalty([p, p])
    with pytest.raises(ValueError, match="no 'params'"):
        Penalty([{"l1": 0.1}])
    with pytest.raises(TypeError, match="not a mix"):
        Penalty([p, {"params": [p]}])
    with pytest.raises(TypeError, match=r"params\[1\] has dtype torch.int64"):
        Penalty([p, torch.ones(3, dtype=torch.int64)])
    with pytest.raises(ValueError, match="l2 must be finite"):
        Penalty([p], l2=-1.0)
    with pytest.raises(ValueError, match="group 1 l1 must be finite"):
        Penalty([{"params": [p]}, {"params": [torch.ones(2)], "l1": float("nan")}])


def test_call_is_the_differentiable_total():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    penalty = Penalty(model, l1=0.01, l2=0.1)
    weights = [model[0].weight, model[2].weight]
    total = penalty()
    assert total.dim() == 0 and total.dtype == torch.float32 and total.requires_grad
    assert total.item() == fastpenalty.value_many([w.detach() for w in weights], 0.01, 0.1).item()
    total.backward()
    for w in weights:
        assert torch.equal(w.grad, fastpenalty.grad(w.detach(), 0.01, 0.1))
    assert model[0].bias.grad is None


def test_accumulate_creates_grads_and_skips_frozen_parameters():
    torch.manual_seed(0)
    a = nn.Parameter(torch.randn(4, 3))
    b = nn.Parameter(torch.randn(6))
    frozen = nn.Parameter(torch.randn(5), requires_grad=False)
    half = nn.Parameter(torch.randn(7).half())
    a.grad = torch.ones(4, 3)
    penalty = Penalty([a, b, frozen, half], l1=0.02, l2=0.3)
    value = penalty.accumulate_()
    assert not value.requires_grad and value.dtype == torch.float32
    assert value.item() == pytest.approx(penalty().item(), rel=1e-6)  # frozen ones count too
    assert torch.equal(a.grad, 1 + fastpenalty.grad(a.detach(), 0.02, 0.3))
    assert torch.equal(b.grad, fastpenalty.grad(b.detach(), 0.02, 0.3))
    assert half.grad.dtype == torch.float16
    assert torch.equal(half.grad, fastpenalty.grad(half.detach(), 0.02, 0.3))
    assert frozen.grad is None
    penalty.accumulate_()  # a second pass adds again, through the same cached split
    assert torch.equal(b.grad, 2 * fastpenalty.grad(b.detach(), 0.02, 0.3))


def test_step_pre_hook_matches_sgd_weight_decay():
    # weight_decay=wd in a PyTorch optimizer is l2 = wd / 2 here
    torch.manual_seed(0)
    decayed = nn.Linear(6, 3).double()
    penalized = nn.Linear(6, 3).double()
    penalized.load_state_dict(decayed.state_dict())
    opt_decayed = torch.optim.SGD(decayed.parameters(), lr=0.1, weight_decay=0.05)
    opt_penalized = torch.optim.SGD(penalized.parameters(), lr=0.1)
    handle = Penalty(penalized.parameters(), l2=0.025).attach(opt_penalized)
    x = torch.randn(16, 6, dtype=torch.float64)
    for _ in range(3):
        for model, opt in ((decayed, opt_decayed), (penalized, opt_penalized)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(decayed.parameters(), penalized.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)
    handle.remove()
    before = [p.detach().clone() for p in penalized.parameters()]
    opt_penalized.zero_grad()
    opt_penalized.step()  # no gradients and no hook: nothing moves
    assert all(torch.equal(p, q) for p, q in zip(before, penalized.parameters()))


def test_set_factors_changes_groups_in_place():
    a, b = nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))
    penalty = Penalty([{"params": [a]}, {"params": [b]}], l1=0.1, l2=0.2)
    factors = penalty._l1s  # the tensor a compiled graph reads must stay the same object
    penalty.set_factors(l2=0.5)
    assert penalty.factors(0) == (0.1, 0.5) and penalty.factors(1) == (0.1, 0.5)
    penalty.set_factors(l1=torch.tensor(0.0), group=-1)
    assert penalty.factors(1) == (0.0, 0.5) and penalty._l1s is factors
    expected = fastpenalty.value_many([a.detach(), b.detach()], [0.1, 0.0], 0.5)
    assert penalty().item() == expected.item()
    with pytest.raises(IndexError, match="2 group"):
        penalty.set_factors(l1=0.1, group=2)
    with pytest.raises(ValueError, match="l2 must be finite"):
        penalty.set_factors(l1=0.3, l2=float("inf"))
    assert penalty.factors(0) == (0.1, 0.5), "a refused call changed a factor"


def test_parameters_that_are_not_contiguous():
    torch.manual_seed(0)
    transposed = nn.Parameter(torch.randn(5, 4).t())
    strided = nn.Parameter(torch.randn(6, 8)[:, ::2])
    conv = nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    params = [transposed, strided, conv.weight]
    assert not any(p.is_contiguous() for p in params)
    penalty = Penalty(params, l1=0.01, l2=0.2)
    copies = [p.detach().contiguous() for p in params]
    expected = fastpenalty.value_many(copies, 0.01, 0.2).item()
    assert penalty().item() == pytest.approx(expected, rel=1e-6)
    penalty().backward()
    for p, c in zip(params, copies):
        assert torch.equal(p.grad, fastpenalty.grad(c, 0.01, 0.2))
    grads = [p.grad.clone() for p in params]
    strided.grad = torch.zeros(8, 6)[::2].t()  # a gradient laid out unlike its parameter
    grads[1] = torch.zeros(6, 4)
    with pytest.warns(UserWarning, match="doubles the penalty's gradient"):  # both forms here
        assert penalty.accumulate_().item() == pytest.approx(expected, rel=1e-6)
    for p, c, g in zip(params, copies, grads):
        torch.testing.assert_close(p.grad, g + fastpenalty.grad(c, 0.01, 0.2), rtol=1e-6, atol=1e-7)


def test_follows_the_model_across_dtype_changes_and_empty_penalties():
    model = nn.Linear(4, 4)
    penalty = Penalty(model, l2=0.5)
    model.double()
    assert penalty().dtype == torch.float64
    empty = Penalty([])
    assert empty().item() == 0.0 and empty.accumulate_().item() == 0.0


def test_errors_name_the_parameter():
    model = nn.Sequential(nn.Linear(3, 3), nn.Embedding(10, 4, sparse=True))
    penalty = Penalty(model, l2=0.1)
    model[1](torch.tensor([1, 2])).sum().backward()
    before = model[0].weight.detach().clone()
    model[0].weight.grad = torch.zeros(3, 3)
    with pytest.raises(TypeError, match=r"1\.weight\.grad is a torch.sparse_coo tensor"):
        penalty.accumulate_()
    assert torch.equal(model[0].weight.grad, torch.zeros(3, 3)), "an error path wrote a gradient"
    assert torch.equal(model[0].weight, before)
