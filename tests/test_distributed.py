"""The global penalty over sharded parameters (DTensor, FSDP2, plain tensor-parallel shards).

One gloo job per world size (2 and 4 processes on 127.0.0.1) runs every scenario; each rank
records what it computed next to what a single process computes for the same full model, and the
tests below compare them. Collectives are counted per call, both through a wrapper around
torch.distributed.all_reduce and through DTensor's CommDebugMode (which sees every c10d op).
"""
import os
import socket
import tempfile

import pytest
import torch

dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

L1, L2 = 0.01, 0.02
# per-tensor factors for the DTensor model (one per tensor of _dtensor_model, in order)
L1S = [0.01, 0.0, 0.03, 0.02, 0.05, 0.01, 0.04, 0.02]
L2S = [0.02, 0.04, 0.0, 0.01, 0.03, 0.02, 0.01, 0.05]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Collectives:
    """Counts collectives issued inside the block: calls to dist.all_reduce, and every c10d op."""

    def __enter__(self):
        from torch.distributed.tensor.debug import CommDebugMode

        self.all_reduce_calls = 0
        self._original = dist.all_reduce

        def counting(*args, **kwargs):
            self.all_reduce_calls += 1
            return self._original(*args, **kwargs)

        dist.all_reduce = counting
        self._mode = CommDebugMode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        self._mode.__exit__(*exc)
        dist.all_reduce = self._original
        self.total = self._mode.get_total_counts()
        return False


def _dtensor_model(world, seed=0):
    """(full tensor, mesh, placements) triples: uneven and empty shards, several dtypes, a
    Replicate tensor and, on 4 ranks, a 2-d mesh mixing Replicate and Shard."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard

    g = torch.Generator().manual_seed(seed)
    mesh = init_device_mesh("cpu", (world,))
    spec = [
        ((9, 5), torch.float32, mesh, [Shard(0)]),
        ((3,), torch.float32, mesh, [Shard(0)]),  # 4 ranks: the last shard is empty
        ((4, 6), torch.float64, mesh, [Shard(1)]),
        ((5, 5), torch.float32, mesh, [Replicate()]),  # counted once, not `world` times
        ((2, 3), torch.bfloat16, mesh, [Shard(0)]),  # empty shards beyond rank 1
        ((0, 4), torch.float32, mesh, [Shard(0)]),  # empty everywhere
    ]
    if world == 4:
        mesh2 = init_device_mesh("cpu", (2, 2))
        spec += [((6, 4), torch.float32, mesh2, [Replicate(), Shard(0)]),
                 ((5, 3), torch.float16, mesh2, [Shard(1), Replicate()])]
    else:
        spec += [((6, 4), torch.float32, mesh, [Shard(1)]),
                 ((5, 3), torch.float16, mesh, [Replicate()])]
    return [(torch.randn(shape, generator=g).to(dtype), m, pl) for shape, dtype, m, pl in spec]


def _grad_seed(full, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(full.shape, generator=g).to(full.dtype)


def _run_dtensor(world):
    from torch import nn
    from torch.distributed.tensor import distribute_tensor

    import fastpenalty.torch.functional as F
    from fastpenalty.torch import distributed as D

    model = _dtensor_model(world)
    fulls = [f for f, _, _ in model]
    params = [nn.Parameter(distribute_tensor(f, m, pl)) for f, m, pl in model]
    layout = D.Layout(params)
    out = {"expected": F.value_many(fulls, L1S, L2S).detach()}

    with _Collectives() as forward:
        value = D.value(layout, L1S, L2S, F.value_many)
    out["value"] = value.detach()
    out["value_again"] = D.value(layout, L1S, L2S, F.value_many).detach()
    with _Collectives() as backward:
        value.backward()
    out["forward_collectives"] = (forward.all_reduce_calls, forward.total)
    out["backward_collectives"] = (backward.all_reduce_calls, backward.total)
    out["grads"] = [(p.grad.to_local().clone(),
                     distribute_tensor(F.grad(f, a, b), m, pl).to_local())
                    for p, (f, m, pl), a, b in zip(params, model, L1S, L2S)]

    g0 = [distribute_tensor(_grad_seed(f, 100 + i), m, pl) for i, (f, m, pl) in enumerate(model)]
    for p, g in zip(params, g0):
        p.grad = g.clone()
    with _Collectives() as acc:
        total = D.accumulate(layout, L1S, L2S, F.accumulate_many_, F.value_many)
    out["accumulated"] = total
    out["accumulate_collectives"] = (acc.all_reduce_calls, acc.total)
    out["accumulated_grads"] = [
        (p.grad.to_local().clone(), g.to_local() + distribute_tensor(F.grad(f, a, b), m, pl).to_local())
        for p, g, (f, m, pl), a, b in zip(params, g0, model, L1S, L2S)]
    out["local_sizes"] = [p.to_local().numel() for p in params]
    return out


def _run_plain_shards(rank, world):
    """Tensor parallelism by hand: plain tensors, each rank holding its rows of every tensor."""
    import fastpenalty.torch.functional as F
    from fastpenalty.torch import distributed as D

    g = torch.Generator().manual_seed(1)
    fulls = [torch.randn(7, 3, generator=g), torch.randn(2, 4, generator=g).double(),
             torch.randn(11, generator=g)]
    shards = [f.tensor_split(world)[rank].clone().requires_grad_() for f in fulls]
    group = dist.new_group(list(range(world)))
    layout = D.Layout(shards, process_group=group)
    with _Collectives() as forward:
        value = D.value(layout, L1, L2, F.value_many)
    value.backward()
    out = {"expected": F.value_many(fulls, L1, L2).detach(), "value": value.detach(),
           "forward_collectives": (forward.all_reduce_calls, forward.total),
           "grads": [(s.grad.clone(), F.grad(f, L1, L2).tensor_split(world)[rank])
                     for s, f in zip(shards, fulls)]}
    with _Collectives() as acc:
        out["accumulated"] = D.accumulate(layout, L1, L2, F.accumulate_many_, F.value_many)
    out["accumulate_collectives"] = (acc.all_reduce_calls, acc.total)

    # the proximal step on the plain shards: each rank steps its own rows
    stepped_fulls = [f.clone() for f in fulls]
    want = F.prox_many_(stepped_fulls, PROX_LR, 0.5, L2)
    with _Collectives() as step:
        value, zeros = D.prox(layout, PROX_LR, 0.5, L2, F.prox_many_)
    out["prox"] = {"value": value, "zeros": zeros, "expected": want.value, "expected_zeros": want.zeros,
                   "collectives": (step.all_reduce_calls, step.total),
                   "shards": [(s.detach().clone(), f.tensor_split(world)[rank])
                              for s, f in zip(shards, stepped_fulls)]}
    return out


def _run_mixed(world):
    """DTensor shards next to a plain tensor (the same on every rank: counted once) and a frozen
    DTensor (counted in the value, its grad left alone); accumulate creates the missing grads."""
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    import fastpenalty.torch.functional as F
    from fastpenalty.torch import distributed as D

    g = torch.Generator().manual_seed(4)
    fulls = [torch.randn(10, 3, generator=g), torch.randn(4, generator=g),
             torch.randn(6, generator=g).double()]
    mesh = init_device_mesh("cpu", (world,))
    params = [nn.Parameter(distribute_tensor(fulls[0], mesh, [Shard(0)])),
              nn.Parameter(fulls[1].clone()),
              nn.Parameter(distribute_tensor(fulls[2], mesh, [Shard(0)]), requires_grad=False)]
    layout = D.Layout(params)
    value = D.value(layout, L1, L2, F.value_many)
    with _Collectives() as acc:
        accumulated = D.accumulate(layout, L1, L2, F.accumulate_many_, F.value_many)
    return {"value": value.detach(), "accumulated": accumulated,
            "expected": F.value_many(fulls, L1, L2).detach(),
            "accumulate_collectives": (acc.all_reduce_calls, acc.total),
            "frozen_grad": params[2].grad,
            "grads": [(params[0].grad.to_local().clone(),
                       distribute_tensor(F.grad(fulls[0], L1, L2), mesh, [Shard(0)]).to_local()),
                      (params[1].grad.clone(), F.grad(fulls[1], L1, L2))]}


def _fsdp_models(world):
    import copy

    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    reference = copy.deepcopy(model)
    mesh = init_device_mesh("cpu", (world,))
    for layer in (model[0], model[2], model):
        fully_shard(layer, mesh=mesh)
    return model, reference


def _run_fsdp2(world):
    """A training step with loss = task + penalty on an FSDP2 model against the same step on an
    unsharded copy: value and every local gradient shard must agree."""
    from torch.distributed.tensor import distribute_tensor

    import fastpenalty.torch.functional as F
    from fastpenalty.torch import distributed as D

    model, reference = _fsdp_models(world)
    params = list(model.parameters())
    layout = D.Layout(params)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))  # the same batch everywhere

    value = D.value(layout, L1, L2, F.value_many)
    (model(x).sum() + value).backward()
    ref_params = list(reference.parameters())
    ref_value = F.value_many(ref_params, L1, L2)
    (reference(x).sum() + ref_value).backward()
    out = {"value": value.detach(), "expected": ref_value.detach()}

    def shard(t, p):
        return distribute_tensor(t.detach(), p.device_mesh, p.placements).to_local()

    out["grads"] = [(p.grad.to_local().clone(), shard(r.grad, p)) for p, r in zip(params, ref_params)]
    with _Collectives() as acc:
        out["accumulated"] = D.accumulate(layout, L1, L2, F.accumulate_many_, F.value_many)
    out["accumulate_collectives"] = (acc.all_reduce_calls, acc.total)
    out["accumulated_grads"] = [(p.grad.to_local().clone(), shard(r.grad + F.grad(r, L1, L2), p))
                                for p, r in zip(params, ref_params)]
    return out


def _run_penalty(world):
    """fastpenalty.torch.Penalty itself on an FSDP2 model: __call__ and accumulate_."""
    import fastpenalty.torch.functional as F
    from fastpenalty.torch import Penalty

    model, reference = _fsdp_models(world)
    penalty = Penalty(model, l1=L1, l2=L2, exclude=())
    with _Collectives() as forward:
        value = penalty()
    for p in model.parameters():
        p.grad = None
    with _Collectives() as acc:
        accumulated = penalty.accumulate_()
    return {"value": value.detach(), "accumulated": accumulated,
            "expected": F.value_many(list(reference.parameters()), L1, L2).detach(),
            "forward_collectives": (forward.all_reduce_calls, forward.total),
            "accumulate_collectives": (acc.all_reduce_calls, acc.total)}


PROX_LR = 0.5  # with l1 up to 0.5 on randn weights: exact zeros, the other elements shrunk


def _run_prox_dtensor(world):
    """The proximal step on the DTensor model (uneven, empty and Replicate shards; one tensor
    frozen): every rank's shards must be the shards of the single-process step, and value and
    zeros the global ones, from one collective."""
    from torch import nn
    from torch.distributed.tensor import distribute_tensor

    import fastpenalty.torch.functional as F
    from fastpenalty.torch import distributed as D

    model = _dtensor_model(world, seed=5)
    params = [nn.Parameter(distribute_tensor(f, m, pl)) for f, m, pl in model]
    frozen = 2
    params[frozen].requires_grad_(False)
    layout = D.Layout(params)
    l1s = [10 * a for a in L1S]  # larger, so the step makes zeros in every dtype
    fulls = [f.clone() for f, _, _ in model]
    stepped = [i for i in range(len(fulls)) if i != frozen]
    expected = F.prox_many_([fulls[i] for i in stepped], PROX_LR, [l1s[i] for i in stepped],
                            [L2S[i] for i in stepped])

    with _Collectives() as step:
        value, zeros = D.prox(layout, PROX_LR, l1s, L2S, F.prox_many_)
    return {"value": value, "zeros": zeros, "expected": expected.value,
            "expected_zeros": expected.zeros, "collectives": (step.all_reduce_calls, step.total),
            "frozen_untouched": torch.equal(params[frozen].to_local(),
                                            distribute_tensor(model[frozen][0], model[frozen][1],
                                                              model[frozen][2]).to_local()),
            "shards": [(p.to_local().detach().clone(),
                        distribute_tensor(f, m, pl).to_local())
                       for p, f, (_, m, pl) in zip(params, fulls, model)]}


def _run_prox_penalty(world):
    """Penalty.prox_ and Penalty.attach_prox on an FSDP2 model against the same calls on its
    unsharded copy: parameters after the step, value and zeros."""
    from torch.distributed.tensor import distribute_tensor

    from fastpenalty.torch import Penalty

    model, reference = _fsdp_models(world)
    l1, l2 = 0.3, L2
    sharded = Penalty(model, l1=l1, l2=l2, exclude=())
    single = Penalty(reference, l1=l1, l2=l2, exclude=())
    with _Collectives() as step:
        got = sharded.prox_(PROX_LR)
    want = single.prox_(PROX_LR)
    out = {"value": got.value, "zeros": got.zeros, "expected": want.value,
           "expected_zeros": want.zeros, "collectives": (step.all_reduce_calls, step.total)}

    # a training step: SGD on both with one lr per layer, the proximal step after it through the
    # optimizer's hook (each parameter with its group's lr)
    def sgd(m):
        return torch.optim.SGD([{"params": m[0].parameters(), "lr": 0.1},
                                {"params": m[2].parameters(), "lr": 0.4}])

    opt, ref_opt = sgd(model), sgd(reference)
    sharded.attach_prox(opt)
    single.attach_prox(ref_opt)
    for i, (p, r) in enumerate(zip(model.parameters(), reference.parameters())):
        grad = _grad_seed(r, 200 + i)
        r.grad = grad.clone()
        p.grad = distribute_tensor(grad, p.device_mesh, p.placements)
    opt.step()
    ref_opt.step()

    def shard(t, p):
        return distribute_tensor(t.detach(), p.device_mesh, p.placements).to_local()

    out["params"] = [(p.to_local().detach().clone(), shard(r, p))
                     for p, r in zip(model.parameters(), reference.parameters())]
    out["zeros_after_step"] = sum(int((p.to_local() == 0).sum()) for p in model.parameters())
    return out


SCENARIOS = {"dtensor": lambda rank, world: _run_dtensor(world),
             "plain_shards": _run_plain_shards,
             "mixed": lambda rank, world: _run_mixed(world),
             "fsdp2": lambda rank, world: _run_fsdp2(world),
             "penalty": lambda rank, world: _run_penalty(world),
             "prox_dtensor": lambda rank, world: _run_prox_dtensor(world),
             "prox_penalty": lambda rank, world: _run_prox_penalty(world)}


def _worker(rank, world, port, outdir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    import fastpenalty

    fastpenalty.set_num_threads(1)
    results = {}
    try:
        for name, run in SCENARIOS.items():
            try:
                results[name] = run(rank, world)
            except Exception as e:  # reported by the test of that scenario
                import traceback

                results[name] = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
            dist.barrier()
    finally:
        torch.save(results, os.path.join(outdir, f"rank{rank}.pt"))
        dist.destroy_process_group()


@pytest.fixture(scope="module", params=[2, 4], ids=["2ranks", "4ranks"])
def ranks(request):
    """Per rank, the results of every scenario on a world of 2 or 4 gloo processes."""
    import torch.multiprocessing as mp

    world = request.param
    for attempt in range(3):
        with tempfile.TemporaryDirectory() as outdir:
            try:
                mp.start_processes(_worker, args=(world, _free_port(), outdir), nprocs=world,
                                   join=True, start_method="spawn")
            except mp.ProcessRaisedException as e:
                # the free port can be taken by another process before rank 0 binds it
                if "address already in use" in str(e).lower() and attempt < 2:
                    continue
                raise
            return [torch.load(os.path.join(outdir, f"rank{r}.pt"), weights_only=False)
                    for r in range(world)]


def _scenario(ranks, name):
    out = []
    for rank, results in enumerate(ranks):
        r = results[name]
        assert "error" not in r, f"rank {rank}: {r.get('error')}"
        out.append(r)
    return out


def _assert_global(results):
    """Every rank holds the single-process value (float tolerance) and all ranks agree bit for bit."""
    first = results[0]["value"]
    for r in results:
        v, expected = r["value"], r["expected"]
        assert v.dtype == expected.dtype and v.dim() == 0
        torch.testing.assert_close(v, expected, rtol=4e-6, atol=0.0)
        assert torch.equal(v, first)


def _assert_tensor_pairs(pairs, rtol=None, atol=None):
    for i, (actual, expected) in enumerate(pairs):
        assert actual.shape == expected.shape, (i, actual.shape, expected.shape)
        torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=lambda m: f"tensor {i}: {m}")


def test_dtensor_value_is_the_single_process_value(ranks):
    results = _scenario(ranks, "dtensor")
    _assert_global(results)
    for r in results:
        assert torch.equal(r["value_again"], r["value"])  # repeated runs: bit-identical


def test_dtensor_shards_include_empty_ones(ranks):
    sizes = [r["local_sizes"] for r in _scenario(ranks, "dtensor")]
    if len(sizes) == 4:
        assert sizes[3][1] == 0 and sizes[2][4] == 0 and sizes[3][4] == 0
    assert all(s[5] == 0 for s in sizes)


def test_dtensor_one_collective_per_call_and_none_in_backward(ranks):
    for r in _scenario(ranks, "dtensor"):
        assert r["forward_collectives"] == (1, 1)
        assert r["accumulate_collectives"] == (1, 1)
        assert r["backward_collectives"] == (0, 0)


def test_dtensor_gradients_are_the_local_shards_of_the_full_gradient(ranks):
    for r in _scenario(ranks, "dtensor"):
        _assert_tensor_pairs(r["grads"])


def test_dtensor_accumulate_adds_local_gradients_and_returns_global_value(ranks):
    results = _scenario(ranks, "dtensor")
    for r in results:
        assert r["accumulated"].requires_grad is False
        torch.testing.assert_close(r["accumulated"], r["expected"], rtol=4e-6, atol=0.0)
        assert torch.equal(r["accumulated"], results[0]["accumulated"])
        _assert_tensor_pairs(r["accumulated_grads"])


def test_plain_shards_with_a_process_group(ranks):
    results = _scenario(ranks, "plain_shards")
    _assert_global(results)
    for r in results:
        assert r["forward_collectives"] == (1, 1)
        assert r["accumulate_collectives"] == (1, 1)
        torch.testing.assert_close(r["accumulated"], r["expected"], rtol=4e-6, atol=0.0)
        _assert_tensor_pairs(r["grads"])


def test_plain_and_frozen_tensors_next_to_dtensors(ranks):
    results = _scenario(ranks, "mixed")
    _assert_global(results)
    for r in results:
        assert r["accumulate_collectives"] == (1, 1)
        torch.testing.assert_close(r["accumulated"], r["expected"], rtol=4e-6, atol=0.0)
        assert r["frozen_grad"] is None
        _assert_tensor_pairs(r["grads"])  # the plain tensor's full gradient on every rank


def test_fsdp2_training_step_matches_the_unsharded_model(ranks):
    results = _scenario(ranks, "fsdp2")
    _assert_global(results)
    for r in results:
        assert r["accumulate_collectives"] == (1, 1)
        torch.testing.assert_close(r["accumulated"], r["expected"], rtol=4e-6, atol=0.0)
        # the task gradient went through FSDP's reduce-scatter (an average of equal numbers)
        _assert_tensor_pairs(r["grads"], rtol=1e-5, atol=1e-6)
        _assert_tensor_pairs(r["accumulated_grads"], rtol=1e-5, atol=1e-6)


def test_penalty_class_on_fsdp2(ranks):
    results = _scenario(ranks, "penalty")
    _assert_global(results)
    for r in results:
        assert r["forward_collectives"] == (1, 1)
        assert r["accumulate_collectives"] == (1, 1)
        torch.testing.assert_close(r["accumulated"], r["expected"], rtol=4e-6, atol=0.0)


def _assert_global_prox(results):
    """value and zeros: the single-process ones on every rank, all ranks bit for bit equal."""
    _assert_global(results)
    for r in results:
        assert r["zeros"].dtype == torch.int64 and r["zeros"].dim() == 0
        assert int(r["zeros"]) == int(r["expected_zeros"]) > 0
        assert not r["value"].requires_grad


def test_dtensor_prox_steps_every_shard_and_returns_global_value_and_zeros(ranks):
    results = _scenario(ranks, "prox_dtensor")
    _assert_global_prox(results)
    for r in results:
        assert r["collectives"] == (1, 1)
        assert r["frozen_untouched"]
        _assert_tensor_pairs(r["shards"], rtol=0, atol=0)


def test_prox_of_plain_shards_with_a_process_group(ranks):
    results = [r["prox"] for r in _scenario(ranks, "plain_shards")]
    _assert_global_prox(results)
    for r in results:
        assert r["collectives"] == (1, 1)
        _assert_tensor_pairs(r["shards"], rtol=0, atol=0)


def test_penalty_prox_and_attach_prox_on_fsdp2(ranks):
    results = _scenario(ranks, "prox_penalty")
    _assert_global_prox(results)
    for r in results:
        assert r["collectives"] == (1, 1)
        # SGD's update of a DTensor shard is the unsharded update's elements: the same bits
        _assert_tensor_pairs(r["params"], rtol=0, atol=0)
    total_zeros = sum(r["zeros_after_step"] for r in results)
    assert total_zeros > 0


def test_single_process_layout_needs_nothing():
    from fastpenalty.torch import distributed as D

    assert not D.needed([torch.zeros(3), torch.ones(2)])
    assert D.needed([torch.zeros(3)], process_group=object())
