"""The public penalty functions for torch tensors (fastpenalty.l1 & co. route tensors here).

    l1(w, factor=0.01, *, check_finite=False)             -> 0-dim tensor
    l2(w, factor=0.01, *, check_finite=False)             -> 0-dim tensor
    l1_l2(w, l1=0.01, l2=0.01, *, check_finite=False)     -> 0-dim tensor
    grad(w, l1=0.0, l2=0.0, *, check_finite=False)        -> tensor shaped like w
    accumulate_(w, g, l1=0.0, l2=0.0, *, check_finite=False)          -> 0-dim tensor
    value_many(ws, l1=0.0, l2=0.0, *, check_finite=False)             -> 0-dim tensor
    accumulate_many_(ws, gs, l1=0.0, l2=0.0, *, check_finite=False)   -> 0-dim tensor

Values are 0-dim tensors on the weights' device: float32, or float64 when every weight is
float64. l1, l2, l1_l2, value_many and grad are differentiable with respect to the weights (and
traceable by torch.compile without graph breaks); accumulate_ and accumulate_many_ write g in
place, are not differentiable and return the value detached.

Factors may be Python numbers or 0-dim tensors (for the *_many forms also one number per tensor,
or a 1-dim tensor with one entry per tensor). Under torch.compile a Python number passed into the
compiled function is specialized on: a new value recompiles (dynamo may then turn the number
into a symbolic input, at the price of that recompilation). A factor that changes between
compiled calls (a schedule) should therefore be a tensor updated in place, or belong to a
fastpenalty.torch.Penalty: then it is an input of the graph and never recompiles. Factors are
checked (finite, >= 0, else ValueError naming the factor) wherever their value is on the host:
numbers and CPU tensors in eager mode at the call, and inside a compiled graph when the op runs
on CPU tensors. Factors on a GPU are not read back, so that no call waits for the device:
give such factors as numbers in eager mode, or through Penalty (checked in set_factors).
"""
import torch

from .. import _core
from .._factors import check_factor, check_factor_list, refuse_non_real
from . import _checks, _cpu, _ops, _plan
from ._overlap import require_disjoint
from ._plan import any_requires_grad, eager as _eager

# The plans (csrc/python/torch_plan.h) of the public *_many functions; Penalty has its own.
_VALUES, _PAIRS = _plan.new(), _plan.new()


def _direct(tensors, differentiable: bool) -> bool:
    """Whether the CPU kernels may run without the dispatcher: plain CPU tensors in eager mode,
    with nothing for autograd, a mode or a transform to see. Same kernels, same checks; it only
    saves the custom op's dispatch overhead on calls where the op would do nothing else."""
    if not _eager():
        return False
    record = differentiable and torch.is_grad_enabled()
    return all(type(t) in _cpu.PLAIN_TYPES and t.is_cpu and not (record and t.requires_grad)
               for t in tensors)


# ----------------------------------------------------------------------------------- factors

def _check_factor_tensor(f: torch.Tensor, name: str, count: int) -> None:
    if f.requires_grad:
        raise ValueError(f"{name} requires grad; penalties are not differentiable with respect to "
                         f"their factors (pass {name}.detach())")
    refuse_non_real(f, name)
    if f.dim() > 1 or f.numel() not in (1, count):
        what = "a single factor" if count == 1 else f"one factor or one per tensor ({count})"
        raise ValueError(f"{name} must hold {what}, got a tensor of shape {tuple(f.shape)}")


def _host_value(f, name: str):
    """The factor's value, checked, when the host knows it without waiting for a device: a
    number, or a CPU tensor outside of tracing. None otherwise; the op then checks CPU factors
    when it runs. While tracing, a number may be symbolic (dynamo makes a float argument dynamic
    once its value changes), so Python-level checks are left to the op there too."""
    if type(f) is float and not torch.compiler.is_compiling():  # the common case, quickly
        return _checks.factor_value(f, name)
    if isinstance(f, torch.Tensor):
        _check_factor_tensor(f, name, 1)
        if f.is_cpu and not torch.compiler.is_compiling():
            return check_factor(f.item(), name)
        return None
    if torch.compiler.is_compiling():
        return None
    return check_factor(f, name)


# Eager calls with number factors reuse one tensor per (value, device): the values repeat from
# call to call, and a fill per factor would cost more than the op on a small tensor.
_constants = {}


def _constant(value: float, device) -> torch.Tensor:
    if torch.compiler.is_compiling():
        # a product rather than torch.full: once dynamo makes a changing float symbolic, this
        # form keeps it a graph input (one more graph) instead of one graph per value
        return torch.ones((), dtype=torch.float64, device=device) * value
    key = (value, device)
    t = _constants.get(key)
    if t is None:
        t = torch.full((), value, dtype=torch.float64, device=device)
        if not torch.is_inference_mode_enabled():  # an inference tensor cannot be saved for backward
            if len(_constants) >= 64:
                _constants.clear()
            _constants[key] = t
    return t


def _factor(f, name: str, device) -> torch.Tensor:
    """One factor as the float64 0-dim tensor on `device` that the ops take."""
    value = _host_value(f, name)
    if not isinstance(f, torch.Tensor):
        return _constant(f if value is None else value, device)
    if value is not None and f.device != device:
        return _constant(value, device)
    return f.reshape(()).to(device=device, dtype=torch.float64)


_SCALARS = (torch.Tensor, float, int, torch.SymFloat, torch.SymInt)


def _is_sequence(f) -> bool:
    # a Python number may be symbolic while dynamo traces: no hasattr / getattr on it there
    if isinstance(f, (list, tuple)):
        return True
    return not isinstance(f, _SCALARS) and getattr(f, "ndim", 0) > 0


def _host_values(f, name: str, count: int):
    """One factor or one per tensor as checked floats known on the host, or None."""
    if isinstance(f, torch.Tensor):
        _check_factor_tensor(f, name, count)
        if f.is_cpu and not torch.compiler.is_compiling():
            return _checks.factor_values(f.reshape(-1).tolist(), name)
        return None
    if _is_sequence(f) and any(isinstance(v, torch.Tensor) for v in f):
        if len(f) != count:
            raise ValueError(f"{name} has {len(f)} entries for {count} tensors")
        values = [_host_value(v, f"{name}[{i}]") for i, v in enumerate(f)]
        return None if None in values else values
    if torch.compiler.is_compiling():
        return None
    return check_factor_list(f, name, count)


def _factors(f, name: str, count: int, device) -> torch.Tensor:
    """One factor or one per tensor as the float64 1-dim tensor on `device` the ops take."""
    values = _host_values(f, name, count)
    if values is not None:
        if len(values) == 1:
            return _constant(values[0], device).reshape(1)
        return torch.tensor(values, dtype=torch.float64).to(device, non_blocking=True)
    if isinstance(f, torch.Tensor):
        return f.reshape(-1).to(device=device, dtype=torch.float64).contiguous()
    if _is_sequence(f):
        if len(f) != count:
            raise ValueError(f"{name} has {len(f)} entries for {count} tensors")
        return torch.stack([_factor(v, f"{name}[{i}]", device) for i, v in enumerate(f)])
    return _factor(f, name, device).reshape(1)


def _float_list(f: torch.Tensor) -> list:
    return f.reshape(-1).tolist()


# -------------------------------------------------------------------------------- one tensor

def _value(w, l1, l2, check_finite: bool, names) -> torch.Tensor:
    _checks.weight(w, "w")
    if _direct((w,), differentiable=True):
        a, b = _host_value(l1, names[0]), _host_value(l2, names[1])
        if a is not None and b is not None:
            return _cpu.value(w, a, b, check_finite)
    return _ops.value(w, _factor(l1, names[0], w.device), _factor(l2, names[1], w.device),
                      bool(check_finite))


def l1(w, factor=0.01, *, check_finite: bool = False) -> torch.Tensor:
    """factor * sum(|w|) as a 0-dim tensor, differentiable in w."""
    return _value(w, factor, 0.0, check_finite, ("factor", "l2"))


def l2(w, factor=0.01, *, check_finite: bool = False) -> torch.Tensor:
    """factor * sum(w**2) as a 0-dim tensor, differentiable in w. PyTorch's optimizer
    weight_decay=wd is factor = wd / 2."""
    return _value(w, 0.0, factor, check_finite, ("l1", "factor"))


def l1_l2(w, l1=0.01, l2=0.01, *, check_finite: bool = False) -> torch.Tensor:
    """l1 * sum(|w|) + l2 * sum(w**2) in one pass over w, as a 0-dim tensor."""
    return _value(w, l1, l2, check_finite, ("l1", "l2"))


def grad(w, l1=0.0, l2=0.0, *, check_finite: bool = False) -> torch.Tensor:
    """A new tensor shaped like w, in w's dtype: l1 * sign(w) + 2 * l2 * w, sign(0) = 0."""
    _checks.weight(w, "w")
    if _direct((w,), differentiable=True):
        a, b = _host_value(l1, "l1"), _host_value(l2, "l2")
        if a is not None and b is not None:
            if check_finite:
                _cpu.require_finite([w], ["w"])
            return _cpu.grad(w, a, b)
    return _ops.grad(w, _factor(l1, "l1", w.device), _factor(l2, "l2", w.device), None,
                     bool(check_finite))


def accumulate_(w, g, l1=0.0, l2=0.0, *, check_finite: bool = False) -> torch.Tensor:
    """g += grad(w) in one fused pass that also returns the penalty value of w (detached)."""
    _checks.weight(w, "w")
    _checks.target(w, g, "w", "g")
    if _direct((w, g), differentiable=False):
        a, b = _host_value(l1, "l1"), _host_value(l2, "l2")
        if a is not None and b is not None:
            require_disjoint([w], [g], single=True)
            out = _cpu.accumulate(w, g, a, b, check_finite)
            torch.autograd.graph.increment_version(g)
            return out
    l1t, l2t = _factor(l1, "l1", w.device), _factor(l2, "l2", w.device)
    with torch.no_grad():  # the value of an in-place update is returned detached
        (staged,), copy_back = _without_neg_bit([w], [g], single=True)
        out = _ops.accumulate_(w, staged, l1t, l2t, bool(check_finite))
        copy_back()
        return out


def _without_neg_bit(ws, gs, single: bool):
    """gs, with a resolved copy in place of each negative-bit view, and the function that writes
    the copies back. The dispatcher's fallback for such views cannot run an op that mutates them
    and returns something else (an internal assert), so the op never sees one."""
    if torch.compiler.is_compiling() or not any(g.is_neg() for g in gs):
        return gs, lambda: None
    require_disjoint(ws, gs, single=single)  # the copies would hide an overlap from the op
    staged = [g.resolve_neg() if g.is_neg() else g for g in gs]

    def copy_back():
        for g, copy in zip(gs, staged):
            if copy is not g:
                g.copy_(copy)
    return staged, copy_back


# ------------------------------------------------------------------------------ many tensors

def _as_list(ts, name: str) -> list:
    if isinstance(ts, torch.Tensor):
        raise TypeError(f"{name} must be a sequence of tensors, got a single tensor")
    return ts if isinstance(ts, list) else list(ts)


def _device_of(ws):
    return ws[0].device if ws else torch.device("cpu")


def value_many(ws, l1=0.0, l2=0.0, *, check_finite: bool = False) -> torch.Tensor:
    """l1 * sum|w| + l2 * sum w^2 summed over every tensor of ws, in one fused call; l1 and l2
    are one factor or one per tensor. A 0-dim tensor, differentiable in every w."""
    return _value_many(_as_list(ws, "ws"), l1, l2, check_finite, _VALUES)


def _value_many(ws: list, l1, l2, check_finite, plan) -> torch.Tensor:
    """value_many through `plan` first (Penalty passes its own, so that two penalties do not
    evict each other's lists), then the Python checks."""
    if _eager():
        got = plan.value_many(ws, l1, l2, bool(check_finite), torch.is_grad_enabled())
        if got is not None:
            value, dtype, record = got
            if record:  # the plan checked the factors: kept as given, read back in backward
                return _apply_value_many(value, dtype, _kept(l1), _kept(l2), *ws)
            return torch.scalar_tensor(value, dtype=dtype)
        flat = _cpu.plain_weights(ws)
        if flat is not None:
            a, b = _host_values(l1, "l1", len(ws)), _host_values(l2, "l2", len(ws))
            if a is not None and b is not None and None not in a and None not in b:
                total = _cpu.value_flat(flat, ws, a, b, check_finite)
                if torch.is_grad_enabled() and any_requires_grad(ws):
                    return _recorded(total.item(), total.dtype, ws, a, b)
                return total
    _checks.many(ws, "ws")
    device = _device_of(ws)
    return _ops.value_many(ws, _factors(l1, "l1", len(ws), device),
                           _factors(l2, "l2", len(ws), device), bool(check_finite))


def _recorded(value: float, dtype, ws, l1, l2) -> torch.Tensor:
    """The value, computed already, as the output of one autograd node over ws."""
    n = len(ws)
    a, b = _host_values(l1, "l1", n), _host_values(l2, "l2", n)
    return _apply_value_many(value, dtype, a, b, *ws)


def _kept(f):
    """A factor the plan accepted (a number, a list/tuple of numbers or a float64 CPU tensor), as
    the value it has now: a later in-place change must not reach the backward."""
    if isinstance(f, torch.Tensor):
        return f.detach().clone()
    return list(f) if isinstance(f, (list, tuple)) else f


def _float_values(f) -> list:
    if isinstance(f, torch.Tensor):
        return f.reshape(-1).tolist()
    return [float(v) for v in f] if isinstance(f, list) else [float(f)]


_MODIFIED = ("one of the variables needed for gradient computation has been modified by an "
             "inplace operation: a weight of fastpenalty's value_many (or Penalty()) changed "
             "between the forward and this backward")


class _EagerValueMany(torch.autograd.Function):
    """value_many of plain CPU tensors that autograd records, in eager mode: the custom op's
    kernels without its per-tensor dispatch work (bench/bench_torch_overhead.py). The forward
    is given the value (computed by the plan or _cpu.value_flat) and the checked factors (float
    lists, or the plan's factors as `_kept`, turned into floats only in backward), and only
    records the node; backward is _cpu.grad_many, or the differentiable grad_many op when the
    backward is itself recorded (double backward)."""

    @staticmethod
    def forward(ctx, value: float, dtype, l1s, l2s, *ws):
        ctx.factors = (l1s, l2s)
        # the weights' version counters, read in C++, instead of one SavedVariable per weight
        # (a third of the node's cost on many small tensors): backward refuses modified weights
        stamp = _core.TorchVersions(ws)
        if stamp.ok:
            ctx.weights, ctx.stamp = ws, stamp
        else:
            ctx.save_for_backward(*ws)
            ctx.stamp = None
        return torch.scalar_tensor(value, dtype=dtype)

    @staticmethod
    def _weights(ctx) -> tuple:
        if ctx.stamp is None:
            return ctx.saved_tensors
        if not ctx.stamp.unchanged(ctx.weights):
            raise RuntimeError(_MODIFIED)
        return ctx.weights

    @staticmethod
    def backward(ctx, gout):
        ws = _EagerValueMany._weights(ctx)
        l1s, l2s = map(_float_values, ctx.factors)
        chosen = [i for i, need in enumerate(ctx.needs_input_grad[4:]) if need]
        pick = (lambda f: f) if len(l1s) == 1 and len(l2s) == 1 else (
            lambda f: f * len(ws) if len(f) == 1 else f)
        a, b = pick(l1s), pick(l2s)
        if len(a) > 1:
            a, b = [a[i] for i in chosen], [b[i] for i in chosen]
        sub = [ws[i] for i in chosen]
        if torch.is_grad_enabled():  # create_graph=True: stay differentiable
            f64 = torch.float64
            picked = _ops.grad_many(sub, torch.tensor(a, dtype=f64), torch.tensor(b, dtype=f64),
                                    gout.reshape(()))
        else:
            picked = _cpu.grad_many(sub, a, b, gout.item())
        grads = [None] * len(ws)
        for i, g in zip(chosen, picked):
            grads[i] = g
        return (None, None, None, None, *grads)


try:  # Function.apply's Python layer (functorch unwrapping) costs a pass over the inputs; the
    # node is only recorded in eager mode (_eager), where that layer does nothing
    _apply_value_many = torch._C._FunctionBase.__dict__["apply"].__get__(None, _EagerValueMany)
except (AttributeError, KeyError, TypeError):
    _apply_value_many = _EagerValueMany.apply


def accumulate_many_(ws, gs, l1=0.0, l2=0.0, *, check_finite: bool = False) -> torch.Tensor:
    """Every gs[i] += grad(ws[i]) in one fused multi-tensor call; returns the total value
    (detached). Nothing is written unless every check passes."""
    ws, gs = _as_list(ws, "ws"), _as_list(gs, "gs")
    if _eager():
        got = _PAIRS.accumulate_many(ws, gs, l1, l2, bool(check_finite))
        if got is not None:
            return torch.scalar_tensor(got[0], dtype=got[1])
        pairs = _cpu.plain_pairs(ws, gs)
        if pairs is not None:
            a, b = _host_values(l1, "l1", len(ws)), _host_values(l2, "l2", len(ws))
            if a is not None and b is not None and None not in a and None not in b:
                return _written(gs, _cpu.accumulate_flat(pairs, ws, gs, a, b, check_finite))
    _checks.targets(ws, gs)
    device = _device_of(ws)
    l1s, l2s = _factors(l1, "l1", len(ws), device), _factors(l2, "l2", len(ws), device)
    # CPU tensors of any layout (targets() proved one device: a CUDA list is not walked again)
    if (not ws or ws[0].is_cpu) and _direct(ws + gs, differentiable=False):
        return _written(gs, _cpu.accumulate_many(ws, gs, _float_list(l1s), _float_list(l2s),
                                                 check_finite))
    with torch.no_grad():  # the value of an in-place update is returned detached
        staged, copy_back = _without_neg_bit(ws, gs, single=False)
        out = _ops.accumulate_many_(ws, staged, l1s, l2s, bool(check_finite))
        copy_back()
        return out


def _written(gs, value: torch.Tensor) -> torch.Tensor:
    """After a write past the dispatcher: autograd must see that gs changed."""
    if gs:
        torch.autograd.graph.increment_version(gs)
    return value


# The proximal elastic-net step (torch/_prox.py); re-exported here so fastpenalty.prox_ finds it.
from ._prox import prox_, prox_many_  # noqa: E402

_PROX = (prox_, prox_many_)  # re-exported: fastpenalty.prox_ sends torch tensors here
