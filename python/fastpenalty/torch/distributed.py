"""The global penalty of a model whose parameters are spread over ranks.

FSDP2 (`fully_shard`) and DTensor parameters, and plain tensor-parallel shards given a process
group: every rank sums the penalty over the elements it holds, then ONE scalar all_reduce over
the whole model gives the global value. Gradients need no communication: the penalty is a sum
over elements, so d(global value) / d(local element) is the local gradient.

Counting rule. Each element of the logical model counts exactly once:
  * a DTensor counts on a rank only when that rank's mesh coordinate is 0 along every mesh
    dimension where the tensor is Replicate (its copies elsewhere are the same numbers);
  * a plain tensor, when a process_group is given, is this rank's own disjoint shard and always
    counts; without one (next to DTensors) it is the same on every rank and counts on group
    rank 0 only.
Copies that do not count still receive the full local gradient, so replicas stay identical
(HSDP and FSDP2 average the task gradient over replicas; an averaged full gradient is the full
gradient).

DDP needs none of this: every rank holds full parameters and the plain penalty is already global.
"""
from __future__ import annotations

import sys

import torch
import torch.distributed as dist


def is_dtensor(t) -> bool:
    # torch.distributed.tensor is slow to import; no DTensor can exist before someone has
    # imported it, so look it up instead of importing it
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and isinstance(t, module.DTensor)


def needed(params, process_group=None) -> bool:
    """Whether the penalty over `params` needs the distributed path at all."""
    return process_group is not None or any(is_dtensor(p) for p in params)


def _replica_copy(p) -> bool:
    """True when this rank holds a DTensor copy that another rank already counts."""
    mesh = p.device_mesh
    coordinate = mesh.get_coordinate()
    if coordinate is None:  # this rank is outside the mesh: it holds nothing of p
        return True
    for dim, placement in enumerate(p.placements):
        if placement.is_partial():
            raise NotImplementedError(
                f"a parameter has a Partial placement on mesh dimension {dim}; the penalty of "
                "pending partial sums is not the penalty of their sum: redistribute it to "
                "Shard or Replicate first")
        if placement.is_replicate() and coordinate[dim] != 0:
            return True
    return False


def _reduction_group(params, process_group):
    """The group the partial sums are added over: the one given, else the DTensors' mesh."""
    if process_group is not None:
        return process_group
    if not dist.is_initialized():
        raise RuntimeError("DTensor parameters need an initialized torch.distributed process group")
    meshes = {id(p.device_mesh): p.device_mesh for p in params if is_dtensor(p)}
    world = dist.get_world_size()
    if all(m.size() == world for m in meshes.values()):
        return None  # the default (world) group
    if len(meshes) == 1:
        mesh = next(iter(meshes.values()))
        if mesh.ndim == 1:
            return mesh.get_group()
    raise ValueError(
        "the DTensor parameters live on meshes that do not span all ranks; pass "
        "process_group= naming the group whose ranks together hold the whole model")


class Layout:
    """Which parameters count toward this rank's partial sum, and the group to add them over.
    Built once per parameter list; every call then only looks up local tensors."""

    def __init__(self, params, process_group=None):
        self.params = list(params)
        self.group = _reduction_group(self.params, process_group)
        plain_counts = process_group is not None or dist.get_rank(self.group) == 0
        counts = [(not _replica_copy(p)) if is_dtensor(p) else plain_counts for p in self.params]
        self.counted = [i for i, c in enumerate(counts) if c]
        self.uncounted = [i for i, c in enumerate(counts) if not c]
        # the contract's value dtype, the same on every rank whatever each one holds
        fp64 = bool(self.params) and all(p.dtype == torch.float64 for p in self.params)
        self.value_dtype = torch.float64 if fp64 else torch.float32
        self._index_tensors = {}

    def index_tensor(self, indices, device) -> torch.Tensor:
        """indices as a long tensor on device, made once per distinct list."""
        key = (tuple(indices), device)
        t = self._index_tensors.get(key)
        if t is None:
            t = self._index_tensors[key] = torch.tensor(indices, dtype=torch.long, device=device)
        return t

    def local_weights(self) -> list:
        """The tensors this rank holds; for DTensors a differentiable view, so autograd delivers
        the gradient into the DTensor parameter's .grad with its own placements."""
        return [p.to_local() if is_dtensor(p) else p for p in self.params]

    def local_grads(self, indices) -> list:
        """This rank's part of p.grad for the parameters at indices (None elsewhere), writable
        in place; p.grad is created (zeros, same placements) where it is None."""
        out = [None] * len(self.params)
        with torch.no_grad():
            for i in indices:
                p = self.params[i]
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                out[i] = p.grad.to_local() if is_dtensor(p.grad) else p.grad
        return out


def _pick(layout, factors, indices):
    """The factors of a subset of the tensors: a scalar (float, 0-dim tensor or one-entry
    sequence) applies to all; a per-tensor sequence or 1-dim tensor is indexed."""
    if isinstance(factors, torch.Tensor):
        if factors.dim() == 0 or factors.numel() == 1 or len(indices) == factors.numel():
            return factors
        return factors.index_select(0, layout.index_tensor(indices, factors.device))
    if isinstance(factors, (list, tuple)):
        return factors if len(factors) == 1 else [factors[i] for i in indices]
    return factors


def _all_reduce_sum(value: torch.Tensor, group) -> torch.Tensor:
    """One scalar all_reduce. The partials are added in float64 and rounded once to the value's
    dtype, so the result does not depend on the order the backend adds them in."""
    total = value.detach().to(torch.float64, copy=True).reshape(1)
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    return total.reshape(()).to(value.dtype)


class _GlobalSum(torch.autograd.Function):
    """forward: the all_reduced sum of the counted partial value (uncounted copies add nothing).
    backward: the incoming gradient goes unchanged to both local values. Every rank
    differentiates the same global value, and d(global) / d(local element) is the local
    gradient, so the backward must not communicate."""

    @staticmethod
    def forward(ctx, counted, uncounted, group):
        return _all_reduce_sum(counted, group)

    @staticmethod
    def backward(ctx, grad):
        return grad, grad, None


def _partial(kernel, layout, indices, ws, gs, l1, l2, options) -> torch.Tensor:
    """The local fused kernel over a subset of the tensors, as a value of the layout's dtype;
    an empty subset runs nothing."""
    if not indices:
        device = ws[0].device if ws else torch.device("cpu")
        return torch.zeros((), dtype=layout.value_dtype, device=device)
    sub = [ws[i] for i in indices]
    args = (sub,) if gs is None else (sub, [gs[i] for i in indices])
    v = kernel(*args, _pick(layout, l1, indices), _pick(layout, l2, indices), **options)
    return v if v.dtype == layout.value_dtype else v.to(layout.value_dtype)


def value(layout: Layout, l1, l2, value_many, **options) -> torch.Tensor:
    """The global, differentiable penalty. `value_many(ws, l1, l2, **options)` is the local
    fused kernel (fastpenalty.torch.functional.value_many); it runs once over the counted
    tensors and, only when replicas exist, once over the uncounted ones (for their gradient)."""
    ws = layout.local_weights()
    counted = _partial(value_many, layout, layout.counted, ws, None, l1, l2, options)
    uncounted = _partial(value_many, layout, layout.uncounted, ws, None, l1, l2, options)
    return _GlobalSum.apply(counted, uncounted, layout.group)


def accumulate(layout: Layout, l1, l2, accumulate_many, value_many, **options) -> torch.Tensor:
    """Every local p.grad += grad(local p) for the parameters that require grad (replica copies
    included; p.grad is created where it is None), and the global value of all of them, frozen
    ones included, detached. `accumulate_many(ws, gs, l1, l2, **options)` and
    `value_many(ws, l1, l2, **options)` are the local fused kernels."""
    with torch.no_grad():
        trainable = [p.requires_grad for p in layout.params]
        counted = [i for i in layout.counted if trainable[i]]
        counted_frozen = [i for i in layout.counted if not trainable[i]]
        uncounted = [i for i in layout.uncounted if trainable[i]]
        ws = layout.local_weights()
        gs = layout.local_grads(counted + uncounted)
        value = _partial(accumulate_many, layout, counted, ws, gs, l1, l2, options)
        _partial(accumulate_many, layout, uncounted, ws, gs, l1, l2, options)
        if counted_frozen:
            frozen = _partial(value_many, layout, counted_frozen, ws, None, l1, l2, options)
            value = (value.double() + frozen.double()).to(layout.value_dtype)
        return _all_reduce_sum(value, layout.group)


def prox(layout: Layout, lr, l1, l2, prox_many, **options) -> tuple:
    """The proximal step on this rank's part of every parameter that requires grad (replica
    copies included: they take the same step, so replicas stay identical), and the global
    (value, zeros) of the stepped parameters after it, from ONE all_reduce of both partials.
    `prox_many(ws, lr, l1, l2, **options)` is the local fused step (ProxResult); lr, l1 and l2
    are scalars or one entry per parameter of the layout. Frozen parameters are left alone, as
    the unsharded Penalty.prox_ leaves them."""
    with torch.no_grad():
        stepped = [p.requires_grad for p in layout.params]
        counted = [i for i in layout.counted if stepped[i]]
        uncounted = [i for i in layout.uncounted if stepped[i]]
        ws = layout.local_weights()

        def step(indices):
            picked = [_pick(layout, f, indices) for f in (lr, l1, l2)]
            return prox_many([ws[i] for i in indices], *picked, **options)

        device = ws[0].device if ws else torch.device("cpu")
        partial = torch.zeros(2, dtype=torch.float64, device=device)  # (value, zeros) of the counted
        if counted:
            result = step(counted)
            partial[0], partial[1] = result.value.double(), result.zeros.double()  # exact below 2^53
        if uncounted:
            step(uncounted)
        dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=layout.group)
        fp64 = any(stepped) and all(p.dtype == torch.float64 for p, s in zip(layout.params, stepped) if s)
        return partial[0].to(torch.float64 if fp64 else torch.float32), partial[1].to(torch.int64)
