"""Torch tensors (CPU or CUDA): fastpenalty against what a PyTorch user would write instead.

Accumulate mode (value + every g += grad(w), gradients pre-allocated in p.grad):
  fastpenalty            Penalty(params, l1, l2).accumulate_()  (one tensor: fastpenalty.accumulate_)
  fastpenalty[autograd]  the differentiable value, then .backward()
  torch_eager            loss = l1*sum(p.abs().sum()) + l2*sum((p*p).sum()); loss.backward()
  torch_foreach[alloc]   _foreach_norm for the value, _foreach_add_(grads, _foreach_sign(params), alpha=l1),
                         _foreach_add_(grads, params, alpha=2*l2)
  torch_foreach[scratch] the same with sign written into pre-allocated scratch tensors (torch.sign(out=))
  torch_compile          torch.compile of a hand-fused loop (compile time reported apart)
  probe                  torch._foreach_add_(grads, params): 12 bytes per float32 element, the reference;
                         the core's g += w over flat buffers of the same size (CPU) / torch add_ (CUDA)
Value mode: the same peers without gradients, against a read-only sum over the same bytes.
"""

from __future__ import annotations

import sys
import time

from . import probes
from .buffers import ITEMSIZE, VALUE_RTOL, flat_probe_arrays, probe_dtype_for
from .harness import Candidate, Group


def _no_grad(fn):
    import torch

    def run():
        with torch.no_grad():
            return fn()

    return run


def _accumulation_dtype(torch, dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def fused_accumulate(params, grads, l1: float, l2: float):
    """The hand-fused loop given to torch.compile: value and g += grad(w) per tensor."""
    import torch

    acc = _accumulation_dtype(torch, params[0].dtype)
    total = torch.zeros((), dtype=acc, device=params[0].device)
    for p, g in zip(params, grads):
        x = p.to(acc)
        g.add_((torch.sign(x) * l1 + x * (2 * l2)).to(g.dtype))
        total = total + x.abs().sum() * l1 + (x * x).sum() * l2
    return total


def fused_value(params, l1: float, l2: float):
    import torch

    acc = _accumulation_dtype(torch, params[0].dtype)
    total = torch.zeros((), dtype=acc, device=params[0].device)
    for p in params:
        x = p.to(acc)
        total = total + x.abs().sum() * l1 + (x * x).sum() * l2
    return total


def _compiled(fn, args, label: str):
    """(candidate function, compile seconds), or None when torch.compile fails here."""
    import torch

    compiled = torch.compile(fn, dynamic=False)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            compiled(*args)
    except Exception as exc:  # a peer that cannot run here is reported, not fatal
        print(f"warning: torch.compile of {label} failed, left out: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return None
    seconds = time.perf_counter() - start
    return _no_grad(lambda: compiled(*args)), seconds


def _eager_value(params, l1, l2):
    return l1 * sum(p.abs().sum() for p in params) + l2 * sum((p * p).sum() for p in params)


def _foreach_value(torch, params, l1, l2):
    n1 = torch._foreach_norm(params, 1)
    n2 = torch._foreach_norm(params, 2)
    return l1 * torch.stack(n1).sum() + l2 * torch.stack(n2).square().sum()


def _fastpenalty(torch, params, grads, l1, l2):
    import fastpenalty
    import fastpenalty.torch as fpt

    if len(params) == 1:
        w, g = params[0], grads[0]
        accumulate = _no_grad(lambda: fastpenalty.accumulate_(w, g, l1, l2))
        value = _no_grad(lambda: fastpenalty.l1_l2(w, l1, l2))

        def autograd():
            v = fastpenalty.l1_l2(w, l1, l2)
            v.backward()
            return v.detach()
    else:
        penalty = fpt.Penalty(params, l1=l1, l2=l2, exclude=())
        accumulate = penalty.accumulate_
        value = _no_grad(penalty)

        def autograd():
            v = penalty()
            v.backward()
            return v.detach()

    return ([Candidate("fastpenalty", accumulate), Candidate("fastpenalty", autograd, variant="autograd")],
            [Candidate("fastpenalty", value)])


def _peers(torch, params, grads, l1, l2):
    scratch = [torch.zeros_like(p) for p in params]

    def eager_accumulate():
        loss = _eager_value(params, l1, l2)
        loss.backward()
        return loss.detach()

    def foreach_alloc():
        value = _foreach_value(torch, params, l1, l2)
        torch._foreach_add_(grads, torch._foreach_sign(params), alpha=l1)
        torch._foreach_add_(grads, params, alpha=2 * l2)
        return value

    def foreach_scratch():
        value = _foreach_value(torch, params, l1, l2)
        for p, s in zip(params, scratch):
            torch.sign(p, out=s)
        torch._foreach_add_(grads, scratch, alpha=l1)
        torch._foreach_add_(grads, params, alpha=2 * l2)
        return value

    accumulate = [
        Candidate("torch_eager", eager_accumulate, variant="autograd"),
        Candidate("torch_foreach", _no_grad(foreach_alloc), variant="alloc"),
        Candidate("torch_foreach", _no_grad(foreach_scratch), variant="scratch"),
    ]
    value = [
        Candidate("torch_eager", _no_grad(lambda: _eager_value(params, l1, l2))),
        Candidate("torch_foreach", _no_grad(lambda: _foreach_value(torch, params, l1, l2))),
    ]
    return accumulate, value


def _probes(torch, params, grads, device_type: str, dtype: str):
    """(accumulate reference probe, extra accumulate probe, value probe)."""
    n_bytes = sum(p.numel() * p.element_size() for p in params)
    reference = probes.torch_foreach_add(grads, params)
    if device_type == "cuda":
        flat_dtype = getattr(torch, probe_dtype_for([dtype]))
        n = max(1, n_bytes // ITEMSIZE[str(flat_dtype).replace("torch.", "")])
        fw = torch.full((n,), 0.01, dtype=flat_dtype, device=params[0].device)
        fg = torch.zeros_like(fw)
        return reference, probes.torch_add(fw, fg), probes.torch_sum(fw)
    if len(params) == 1 and dtype in ("float32", "float64"):
        fw, fg = params[0].detach(), grads[0]
    else:
        fw, fg = flat_probe_arrays(n_bytes, probe_dtype_for([dtype]))
    return reference, probes.core_add(fw, fg), probes.core_sum(fw)


def torch_groups(case: str, tensors: list, l1: float, l2: float, *, device_type: str, isa: str = "",
                 threads: int = 0, compile: bool = True, peers: bool = True) -> list:
    """[accumulate group, value group] over ``tensors`` (copied into fresh leaf parameters)."""
    import torch

    params = [t.detach().requires_grad_(True) for t in tensors]
    grads = [torch.zeros_like(p) for p in params]
    for p, g in zip(params, grads):
        p.grad = g
    dtype = str(params[0].dtype).replace("torch.", "")
    n = sum(p.numel() for p in params)
    itemsize = ITEMSIZE[dtype]

    acc, val = _fastpenalty(torch, params, grads, l1, l2)
    one_off_acc, one_off_val = {}, {}
    if peers:
        peer_acc, peer_val = _peers(torch, params, grads, l1, l2)
        acc += peer_acc
        val += peer_val
    if compile:
        made = _compiled(fused_accumulate, (params, grads, l1, l2), "the fused accumulate loop")
        if made:
            acc.append(Candidate("torch_compile", made[0]))
            one_off_acc[("torch_compile", "")] = {"compile_time_s": made[1]}
        made = _compiled(fused_value, (params, l1, l2), "the fused value loop")
        if made:
            val.append(Candidate("torch_compile", made[0]))
            one_off_val[("torch_compile", "")] = {"compile_time_s": made[1]}

    reference, extra_add, read_probe = _probes(torch, params, grads, device_type, dtype)
    acc.append(extra_add)
    common = dict(case=case, api="torch", n_elements=n, n_tensors=len(params), dtype=dtype, isa=isa, threads=threads,
                  value_rtol=VALUE_RTOL.get(dtype))
    return [
        Group(mode="accumulate", bytes_per_call=3 * itemsize * n, candidates=acc, probe=reference,
              one_off=one_off_acc, **common),
        Group(mode="value", bytes_per_call=itemsize * n, candidates=val, probe=read_probe,
              one_off=one_off_val, **common),
    ]
