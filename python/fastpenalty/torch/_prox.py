"""The proximal elastic-net step for torch tensors: the functional forms, Penalty.prox_ and the
optimizer hook of Penalty.attach_prox.

    prox_(w, lr, l1=0.0, l2=0.0, *, check_finite=False)        -> ProxResult(value, zeros)
    prox_many_(ws, lr, l1=0.0, l2=0.0, *, check_finite=False)  -> ProxResult(value, zeros)

w <- sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2) in place, run like an optimizer step: under
no_grad, so parameters that require grad are updated as torch.optim updates them. value (0-dim,
float64 iff every w is float64, else float32) and zeros (0-dim int64) describe the result and
live on the weights' device; neither is differentiable. lr, l1 and l2 are numbers, 0-dim tensors
or (one per tensor) sequences or 1-dim tensors; tensors never recompile under torch.compile.
Every check runs before anything is written; check_finite=True refuses a w holding NaN or Inf.
Factors known on the host (numbers, CPU tensors in eager mode) are checked here; factors already
on a GPU are not read back (no sync): an invalid one makes the CUDA kernel write nothing and
return value NaN and zeros -1.
"""
import math

import torch

from .. import _core
from .._factors import check_factor_list, refuse_non_real
from .._prox_result import ProxResult
from . import _checks, _plan, _prox_ops
from ._layout import DTYPE_CODES

_PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)

try:
    _functorch_active = torch._C._functorch.peek_interpreter_stack
except AttributeError:  # unknown torch internals: always take the op
    def _functorch_active():
        return True


def _eager() -> bool:
    """No tracing, mode or functorch transform that would have to see the call."""
    return not (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack()
                or torch._C._is_torch_function_mode_enabled() or _functorch_active() is not None)


# ------------------------------------------------------------------------------------ factors

def _host_floats(f, name: str, count: int):
    """One factor or one per tensor as checked floats, when the host knows them without waiting
    for a device or reading a traced value; else None (the op checks them where it runs)."""
    compiling = torch.compiler.is_compiling()
    if isinstance(f, torch.Tensor):
        _check_factor_tensor(f, name, count)
        if f.is_cpu and not compiling:
            return _checks.factor_values(f.detach().reshape(-1).tolist(), name)
        return None
    if isinstance(f, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in f):
        if len(f) != count:
            raise ValueError(f"{name} has {len(f)} entries for {count} tensors")
        values = [_host_floats(v, f"{name}[{i}]", 1) for i, v in enumerate(f)]
        return None if None in values else [v[0] for v in values]
    if compiling:
        return None
    return check_factor_list(f, name, count)


def _check_factor_tensor(f: torch.Tensor, name: str, count: int) -> None:
    refuse_non_real(f, name)
    if f.requires_grad:
        raise ValueError(f"{name} requires grad; the proximal step is not differentiable with "
                         f"respect to its factors (pass {name}.detach())")
    if f.dim() > 1 or f.numel() not in (1, count):
        what = "a single factor" if count == 1 else f"one factor or one per tensor ({count})"
        raise ValueError(f"{name} must hold {what}, got a tensor of shape {tuple(f.shape)}")


def _as_tensor(f, name: str, count: int, device) -> torch.Tensor:
    """A factor the host could not read, as the float64 1-dim tensor on `device` the op takes.
    While tracing, a constant number is filled in (no restart of the analysis), a symbolic one
    (dynamo makes a float argument dynamic once it changes) becomes ones * f, a graph input."""
    if isinstance(f, torch.Tensor):
        return f.detach().reshape(-1).to(device=device, dtype=torch.float64)
    if isinstance(f, (list, tuple)):
        if len(f) != count:
            raise ValueError(f"{name} has {len(f)} entries for {count} tensors")
        return torch.cat([_as_tensor(v, f"{name}[{i}]", 1, device) for i, v in enumerate(f)])
    if type(f) in (float, int):  # a constant of the graph
        return torch.full((1,), float(f), dtype=torch.float64, device=device)
    return torch.ones((1,), dtype=torch.float64, device=device) * f


def _factor_tensor(f, floats, name: str, count: int, device) -> torch.Tensor:
    if floats is None:
        return _as_tensor(f, name, count, device)
    return torch.tensor(floats, dtype=torch.float64).to(device, non_blocking=True)


# ----------------------------------------------------------------------------------- the step

def _plain_cpu(ws) -> bool:
    return all(type(w) in _PLAIN_TYPES and w.is_cpu for w in ws)


def prox_many_(ws, lr, l1=0.0, l2=0.0, *, check_finite: bool = False) -> ProxResult:
    """Every ws[i] <- prox(ws[i]) in place, in one fused call; lr, l1 and l2 are one factor or one
    per tensor. Returns ProxResult(value, zeros) of the result."""
    if isinstance(ws, torch.Tensor):
        raise TypeError("ws must be a sequence of tensors, got a single tensor")
    ws = ws if isinstance(ws, list) else list(ws)
    return _prox_named(ws, lr, l1, l2, check_finite, _prox_ops.names_of(len(ws)))


def prox_(w, lr, l1=0.0, l2=0.0, *, check_finite: bool = False) -> ProxResult:
    """w <- sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2) in place. Returns ProxResult(value,
    zeros) of the result."""
    _checks.weight(w, "w")
    for f, name in ((lr, "lr"), (l1, "l1"), (l2, "l2")):
        if isinstance(f, torch.Tensor) and f.numel() != 1:
            raise ValueError(f"{name} must hold a single factor, got a tensor of shape "
                             f"{tuple(f.shape)}")
    return _prox_named([w], lr, l1, l2, check_finite, ["w"])


# The plan (csrc/python/torch_plan.h) of the eager CPU step: plain contiguous CPU tensors with
# host factors, read in C++; anything it does not take goes through the checks below.
_PLAN = _plan.new()


def _prox_named(ws, lr, l1, l2, check_finite: bool, names) -> ProxResult:
    """prox_many_ with errors naming the tensors by `names` (Penalty passes parameter names)."""
    if not check_finite and type(ws) is list and _plan.READY and _plan.eager():
        got = _PLAN.prox_many(ws, lr, l1, l2)  # C++: what changed since the last call, then the core
        if got is not None:
            return ProxResult(torch.scalar_tensor(got[0], dtype=got[1]),
                              torch.scalar_tensor(got[2], dtype=torch.int64))
    count = len(ws)
    floats = [_host_floats(f, name, count) for f, name in ((lr, "lr"), (l1, "l1"), (l2, "l2"))]
    if None not in floats:
        _require_finite_products(*floats)
    eager = _eager()
    if eager and None not in floats:
        flat = _plain_flat(ws)
        if flat is not None:
            return _direct(ws, flat, floats, check_finite, names)
    if eager:  # the op checks again; here the errors can name the tensors
        _prox_ops.check_targets(ws, names)
        if ws:
            _prox_ops.require_disjoint(ws, names)
        if check_finite:
            _require_finite(ws, names)
    with torch.no_grad():
        if eager and None not in floats and _plain_cpu(ws):
            if not ws:
                return ProxResult(*_prox_ops.empty_result(torch.device("cpu")))
            value, zeros = _prox_ops.run_cpu(ws, *floats)
            torch.autograd.graph.increment_version(ws)
            return ProxResult(value, zeros)
        device = ws[0].device if ws else torch.device("cpu")
        lrs, l1s, l2s = (_factor_tensor(f, v, name, count, device)
                         for f, v, name in zip((lr, l1, l2), floats, ("lr", "l1", "l2")))
        staged, copy_back = _without_neg_bit(ws)
        value, zeros = _prox_ops.prox_many_(staged, lrs, l1s, l2s,
                                            bool(check_finite) and not eager)
        copy_back()
        return ProxResult(value, zeros)


# ------------------------------------------------------------------ plain CPU tensors, directly

# The last (addresses, sizes, dtype codes) proven free of overlap: a training loop passes the
# same parameters every step. For contiguous tensors these fix every byte range.
_proven_disjoint = [None]


def _plain_flat(ws):
    """(addresses, sizes, dtype codes) when every w is a plain, contiguous CPU tensor of a
    supported dtype that may be written here (no negative bit, no inference tensor outside
    inference mode); else None and the detailed checks run. The same kernels either way: this
    only skips the dispatcher and the per-tensor Python checks of the common case."""
    ptrs, sizes, codes = [], [], []
    code_of = DTYPE_CODES.get
    inference_ok = torch.is_inference_mode_enabled()
    strided = torch.strided
    for w in ws:
        if type(w) not in _PLAIN_TYPES:
            return None
        code = code_of(w.dtype)
        if (code is None or not w.is_cpu or w.layout is not strided or w.is_nested
                or not w.is_contiguous() or w.is_neg() or (w.is_inference() and not inference_ok)):
            return None
        ptrs.append(w.data_ptr())
        sizes.append(w.numel())
        codes.append(code)
    return ptrs, sizes, codes


def _direct(ws, flat, floats, check_finite: bool, names) -> ProxResult:
    if not ws:
        return ProxResult(*_prox_ops.empty_result(torch.device("cpu")))
    if flat != _proven_disjoint[0]:
        _prox_ops.require_disjoint(ws, names)
        _proven_disjoint[0] = flat
    if check_finite:
        _require_finite(ws, names)
    lrs, l1s, l2s = (_checks.factor_values(f, name) for f, name in zip(floats, ("lr", "l1", "l2")))
    value, zeros = _core.prox_many(flat[0], flat[1], flat[2], lrs, l1s, l2s)
    torch.autograd.graph.increment_version(ws)
    return ProxResult(_prox_ops.rounded_value(value, flat[2]),
                      torch.scalar_tensor(zeros, dtype=torch.int64))


def _require_finite_products(lrs, l1s, l2s) -> None:
    """The kernels take T = lr*l1 and S = 2*lr*l2, which must be finite too (checked here for
    every device: the CUDA kernels cannot refuse)."""
    # every factor is finite and >= 0, so the largest products bound all the others
    if not (lrs and l1s and l2s):  # an empty list, with per-tensor factors for no tensor
        return
    if math.isfinite(max(lrs) * max(l1s)) and math.isfinite(2.0 * max(lrs) * max(l2s)):
        return
    n = max(len(lrs), len(l1s), len(l2s))
    for i in range(n):
        lr, l1, l2 = (f[0 if len(f) == 1 else i] for f in (lrs, l1s, l2s))
        if not (math.isfinite(lr * l1) and math.isfinite(2.0 * lr * l2)):
            where = "" if n == 1 else f" (tensor {i})"
            raise ValueError(f"lr*l1 and 2*lr*l2 must be finite{where}, got lr={lr!r}, "
                             f"l1={l1!r}, l2={l2!r}")


def _require_finite(ws, names) -> None:
    flags = [torch.isfinite(w).all() for w in ws if w.numel()]
    if not flags or bool(torch.stack(flags).all()):  # one synchronization on a GPU
        return
    _prox_ops.require_finite_cpu(ws, names)


def _without_neg_bit(ws):
    """ws with a resolved copy in place of each negative-bit view, and the function writing the
    copies back: the dispatcher's fallback for such views cannot run a mutating op."""
    if torch.compiler.is_compiling() or not any(w.is_neg() for w in ws):
        return ws, lambda: None
    staged = [w.resolve_neg() if w.is_neg() else w for w in ws]

    def copy_back():
        for w, copy in zip(ws, staged):
            if copy is not w:
                w.copy_(copy)
    return staged, copy_back


# ------------------------------------------------------------------------------------ Penalty

def _stepped(penalty) -> list:
    """Indices of the selected parameters the proximal step updates: those that require grad.
    A frozen parameter is left as it is, as an optimizer leaves it (fine-tuning a model whose
    backbone is frozen must not shrink the backbone)."""
    return [i for i, p in enumerate(penalty._params) if p.requires_grad]


def _per_tensor(f, at: list, count: int):
    """A factor given per selected parameter, cut down to the parameters at `at`."""
    if isinstance(f, (list, tuple)) and len(f) == count:
        return [f[i] for i in at]
    if isinstance(f, torch.Tensor) and f.dim() == 1 and f.numel() == count and count > 1:
        return f.index_select(0, torch.tensor(at, dtype=torch.long, device=f.device))
    return f


def penalty_prox(penalty, lr) -> ProxResult:
    """Penalty.prox_: every selected parameter that requires grad, with its group's l1/l2; value
    and zeros are those of the stepped parameters."""
    penalty._refresh()
    if penalty._sharded is not None:
        return _prox_sharded(penalty, lr)
    return _prox_at(penalty, _stepped(penalty), lr)


def _prox_sharded(penalty, lr) -> ProxResult:
    """Each rank steps its local shards; value and zeros are global (one all_reduce). lr: a
    scalar or one entry per selected parameter."""
    from . import distributed

    return ProxResult(*distributed.prox(penalty._sharded, lr, penalty._l1s, penalty._l2s, prox_many_))


def _prox_at(penalty, at: list, lr) -> ProxResult:
    params, count = penalty._params, len(penalty._params)
    if len(at) == count:
        return _prox_named(params, lr, penalty._l1s, penalty._l2s, False, list(penalty._names))
    index = torch.tensor(at, dtype=torch.long, device=penalty._l1s.device)
    return _prox_named([params[i] for i in at], _per_tensor(lr, at, count),
                       penalty._l1s.index_select(0, index), penalty._l2s.index_select(0, index),
                       False, [penalty._names[i] for i in at])


class _ProxHook:
    """optimizer.register_step_post_hook target: after each step, the proximal step with each
    parameter's lr read from its optimizer param group at that moment (schedulers write it).
    Only parameters that require grad are stepped; each of them must be in the optimizer."""

    def __init__(self, penalty, optimizer):
        self.penalty = penalty
        self.key = None
        self._map(optimizer)

    def _map(self, optimizer) -> None:
        """(group index) per stepped parameter; a stepped parameter the optimizer lacks is an
        error."""
        penalty = self.penalty
        penalty._refresh()
        at = _stepped(penalty)
        where = {id(p): g for g, group in enumerate(optimizer.param_groups) for p in group["params"]}
        missing = [penalty._names[i] for i in at if id(penalty._params[i]) not in where]
        if missing:
            raise ValueError(f"attach_prox: the optimizer does not hold {', '.join(missing)}; the "
                             "proximal step takes each parameter's lr from its param group, so "
                             "every parameter of the Penalty that requires grad must be in the "
                             "optimizer (frozen ones are skipped)")
        self.key = self._key()
        self.at = at
        self.slots = [where[id(penalty._params[i])] for i in at]

    def _key(self) -> tuple:
        params = self.penalty._params
        return tuple(map(id, params)) + tuple(p.requires_grad for p in params)

    def lrs(self, optimizer):
        lrs = [group["lr"] for group in optimizer.param_groups]
        if len(set(self.slots)) == 1:
            return lrs[self.slots[0]]
        per_tensor = [lrs[g] for g in self.slots]
        if all(not isinstance(v, torch.Tensor) for v in per_tensor):
            return per_tensor
        device = self.penalty._params[self.at[0]].device
        return torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(1).to(device)
                          for v in per_tensor])

    def __call__(self, optimizer, args, kwargs) -> None:
        penalty = self.penalty
        penalty._refresh()
        if self._key() != self.key:
            self._map(optimizer)  # a parameter replaced, frozen or unfrozen
        if not self.at:
            return
        lrs = self.lrs(optimizer)
        if penalty._sharded is not None:
            if isinstance(lrs, list) or (isinstance(lrs, torch.Tensor) and lrs.dim() == 1):
                lrs = self._spread(lrs)
            _prox_sharded(penalty, lrs)
        else:
            _prox_at(penalty, self.at, lrs)

    def _spread(self, per_stepped):
        """Per-stepped-parameter lrs as one entry per selected parameter (0.0 where frozen: the
        sharded step skips those)."""
        count = len(self.penalty._params)
        if isinstance(per_stepped, torch.Tensor):
            full = torch.zeros(count, dtype=per_stepped.dtype, device=per_stepped.device)
            full[torch.tensor(self.at, dtype=torch.long, device=per_stepped.device)] = per_stepped
            return full
        full = [0.0] * count
        for i, v in zip(self.at, per_stepped):
            full[i] = v
        return full


def attach_prox(penalty, optimizer):
    """Registers the proximal step as a post-step hook; returns the handle (.remove())."""
    if not hasattr(optimizer, "register_step_post_hook"):
        raise TypeError(f"attach_prox needs a torch.optim.Optimizer, got {type(optimizer).__name__}")
    return optimizer.register_step_post_hook(_ProxHook(penalty, optimizer))
