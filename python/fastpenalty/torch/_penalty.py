"""Penalty: a whole model's weight penalty as one fused multi-tensor call."""
import contextlib
import itertools
import numbers
import operator
import re
import warnings
import weakref
from typing import NamedTuple

import torch

from .._exclusion import is_excluded
from .._factors import check_factor
from . import _checks, _plan, _prox, distributed, functional
from ._tracking import Followed

# The rule `python -m fastpenalty profile` applies too: biases, normalization weights, vectors.
DEFAULT_EXCLUDE = (is_excluded,)
_REQUIRES_GRAD, _GRAD = operator.attrgetter("requires_grad"), operator.attrgetter("grad")


# Per-step reads over every parameter: C-level map in eager mode; dynamo cannot trace attrgetter.
def _requires_grad(params) -> tuple:
    if torch.compiler.is_compiling():
        return tuple(p.requires_grad for p in params)
    return tuple(map(_REQUIRES_GRAD, params))


def _grads(params) -> list:
    if torch.compiler.is_compiling():
        return [p.grad for p in params]
    return list(map(_GRAD, params))


def _any_none(grads) -> bool:
    if torch.compiler.is_compiling():
        return any(g is None for g in grads)
    return any(map(operator.is_, grads, itertools.repeat(None)))

_BOTH_FORMS = ("Penalty: the gradient of penalty() reached the parameters through backward() and "
               "accumulate_() is adding it again, which doubles the penalty's gradient; use one "
               "of the two forms per step (loss + penalty(), or accumulate_() after backward())")


class _Split(NamedTuple):
    """The parameters that require grad and those that do not, with their positions and names."""
    trainable: list
    trainable_at: torch.Tensor
    trainable_names: list
    frozen: list
    frozen_at: torch.Tensor
    frozen_names: list


@contextlib.contextmanager
def _naming(names):
    """Errors of the functional forms speak of ws[i] and gs[i]; say which parameter that is."""
    try:
        yield
    except (TypeError, ValueError) as e:
        def name(m):
            return names[int(m.group(2))] + (".grad" if m.group(1) == "gs" else "")
        message = re.sub(r"\b(ws|gs)\[(\d+)\]", name, str(e))
        if message == str(e):
            raise
        raise type(e)(message) from e


def _matches(rule, full_name: str, module, p) -> bool:
    if callable(rule) and not isinstance(rule, type):
        return bool(rule(full_name, tuple(p.shape)))
    if isinstance(rule, str):
        rule = rule.lower()
        return rule in full_name.lower() or (module is not None and rule in type(module).__name__.lower())
    if isinstance(rule, type):
        return module is not None and isinstance(module, rule)
    raise TypeError("exclude entries must be strings, module types or rule(name, shape) "
                    f"functions, got {rule!r}")


def _excluded(exclude, full_name: str, module, p) -> bool:
    return any(_matches(rule, full_name, module, p) for rule in exclude)


def _named_from_module(module: torch.nn.Module, exclude) -> list:
    """(name, parameter) of every parameter of module that no exclude rule matches, each
    parameter once (tied weights: its first name decides)."""
    seen, kept = set(), []
    for prefix, sub in module.named_modules():
        for pname, p in sub.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{prefix}.{pname}" if prefix else pname
            if not _excluded(exclude, full, sub, p):
                kept.append((full, p))
    return kept


def _named_from_items(items, exclude, label: str) -> list:
    """Tensors, or (name, tensor) pairs as named_parameters() yields; names face the exclude
    rules, anonymous tensors are always kept."""
    kept = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            _checks.weight(item[1], item[0])
            if not _excluded(exclude, item[0], None, item[1]):
                kept.append(item)
        else:
            kept.append((f"{label}[{i}]", item))
    return kept


def _factor_value(f, name: str) -> float:
    if isinstance(f, torch.Tensor):
        if f.numel() != 1:
            raise ValueError(f"{name} must be a single factor, got a tensor of shape {tuple(f.shape)}")
        f = f.item()  # the one read-back: factors are set rarely, the penalty runs every step
    return check_factor(f, name)


class Penalty:
    """The penalty of many parameters, computed in one fused call.

        penalty = Penalty(model, l2=5e-4)                    # biases and norm layers excluded
        penalty = Penalty(model.parameters(), l1=1e-5)       # every parameter given
        penalty = Penalty([{"params": convs, "l2": 1e-4},    # optimizer-style groups with their
                           {"params": heads, "l1": 1e-5}])   # own factors (defaults: l1, l2)

    Then, in each step, ONE of the two forms (both at once doubles the penalty's gradient, and
    is warned about once):

        loss = loss + penalty()            # A: differentiable total, compiles without graph breaks
        penalty.accumulate_()              # B: after loss.backward(): p.grad += grad(p), fused
                                           #    (or once: penalty.attach(optimizer))

    `exclude` drops parameters. The default, DEFAULT_EXCLUDE, is the rule `python -m fastpenalty
    profile` applies too (fastpenalty._exclusion.is_excluded): biases, normalization weights and
    every parameter of at most one dimension. Entries may be strings (a parameter whose dotted
    name or owning module's class name contains it, case-insensitive), module types (the
    parameters of modules of that type) or functions rule(name, shape) -> bool; pass
    `exclude=(*DEFAULT_EXCLUDE, "embed")` to add to the default. (name, tensor) pairs, as
    named_parameters() yields, are matched on their names and shapes; plain tensors are always
    kept. A parameter reached twice (tied weights) counts once; one given twice is an error.

    Built from a module, a Penalty follows it: it keeps the module and the names it selected and
    on every call notices (cheaply) a parameter replaced under its name (`m.weight =
    nn.Parameter(...)`, `load_state_dict(sd, assign=True)`, conversions that overwrite
    parameters), then penalizes the new one; a selected parameter that is gone is a RuntimeError.
    A parameter list is taken as given. Under torch.compile the check runs when the graph is
    traced; a compiled step guards on its inputs.

    Factors live in float64 tensors on the parameters' device, so `set_factors` changes them in
    place: a compiled step that calls the penalty is not recompiled, and nothing waits for the
    device. PyTorch's weight_decay=wd corresponds to l2 = wd / 2.

    Sharded parameters (FSDP2 / DTensor, or plain tensor-parallel shards with `process_group`):
    the value is the global one, local partial sums plus one scalar all_reduce per call; the
    gradients stay local (see fastpenalty.torch.distributed). Build it after fully_shard.
    """

    def __init__(self, module_or_params, l1=0.0, l2=0.0, exclude=DEFAULT_EXCLUDE,
                 process_group=None):
        l1, l2 = _factor_value(l1, "l1"), _factor_value(l2, "l2")
        exclude = () if exclude is None else ((exclude,) if isinstance(exclude, (str, type))
                                              or callable(exclude) else tuple(exclude))
        groups = self._groups(module_or_params, l1, l2, exclude)
        self._names, self._slices, params = [], [], []
        for named, _, _ in groups:
            start = len(params)
            params += [p for _, p in named]
            self._names += [name for name, _ in named]
            self._slices.append(slice(start, len(params)))
        self._process_group = process_group
        self._adopt(params)
        self._factors = [[gl1, gl2] for _, gl1, gl2 in groups]
        self._l1s, self._l2s = self._factor_tensors(
            self._params[0].device if self._params else torch.device("cpu"))
        self._followed = (Followed(module_or_params, self._names)
                          if isinstance(module_or_params, torch.nn.Module) else None)
        self._after_backward = None  # what backward through penalty() left in a p.grad
        self._warned_both = False
        # the eager CPU fast path's remembered lists (_plan): penalty() and accumulate_()
        self._value_plan, self._grad_plan = _plan.new(), _plan.new()

    def _adopt(self, params: list) -> None:
        """Takes params (in the order of self._names) as the penalized parameters, checked."""
        owner = {}
        for name, p in zip(self._names, params):
            _checks.weight(p, name)
            if id(p) in owner:
                raise ValueError(f"{name} appears twice (also as {owner[id(p)]}); it would "
                                 "be penalized twice")
            owner[id(p)] = name
        device = params[0].device if params else torch.device("cpu")
        for p, name in zip(params, self._names):
            if p.device != device:
                raise ValueError(f"{name} is on {p.device} but {self._names[0]} is on {device}; "
                                 "build one Penalty per device")
        self._params = params
        self._accumulators = None  # see __call__
        self._splits = {}  # requires_grad pattern -> _Split
        self._sharded = (distributed.Layout(params, self._process_group)
                         if distributed.needed(params, self._process_group) else None)

    @staticmethod
    def _groups(source, l1, l2, exclude) -> list:
        """[(named parameters, l1, l2)] per group."""
        if isinstance(source, torch.nn.Module):
            return [(_named_from_module(source, exclude), l1, l2)]
        if isinstance(source, torch.Tensor):
            source = [source]
        items = list(source)
        if items and all(isinstance(item, dict) for item in items):
            groups = []
            for g, group in enumerate(items):
                if "params" not in group:
                    raise ValueError(f"param group {g} has no 'params' entry")
                params = group["params"]
                params = [params] if isinstance(params, torch.Tensor) else list(params)
                named = _named_from_items(params, exclude, f"group {g} params")
                groups.append((named, _factor_value(group.get("l1", l1), f"group {g} l1"),
                               _factor_value(group.get("l2", l2), f"group {g} l2")))
            return groups
        if any(isinstance(item, dict) for item in items):
            raise TypeError("pass either parameters or param groups (dicts), not a mix")
        return [(_named_from_items(items, exclude, "params"), l1, l2)]

    # ---------------------------------------------------------------------------- inspection

    @property
    def parameters(self) -> tuple:
        self._refresh()
        return tuple(self._params)

    @property
    def names(self) -> tuple:
        return tuple(self._names)

    @property
    def num_groups(self) -> int:
        return len(self._slices)

    def factors(self, group: int = 0) -> tuple:
        """(l1, l2) of a group, as floats."""
        return tuple(self._factors[group])

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        groups = ", ".join(f"(l1={a:g}, l2={b:g}, {s.stop - s.start} tensors)"
                           for (a, b), s in zip(self._factors, self._slices))
        return f"Penalty({groups})"

    # ------------------------------------------------------------------------------- factors

    def set_factors(self, l1=None, l2=None, group=None) -> None:
        """Change l1 and/or l2 (None keeps a factor) of one group, or of all groups, in place.
        A Python number costs nothing; a device tensor is read back once, to check it."""
        groups = range(len(self._slices)) if group is None else [self._group_index(group)]
        values = [(f, _factor_value(f, name), factors, column)
                  for f, name, factors, column in ((l1, "l1", self._l1s, 0), (l2, "l2", self._l2s, 1))
                  if f is not None]
        for _, value, factors, column in values:
            for g in groups:
                factors[self._slices[g]].fill_(value)
                self._factors[g][column] = value

    def _group_index(self, group) -> int:
        if not isinstance(group, numbers.Integral) or not -len(self._slices) <= group < len(self._slices):
            raise IndexError(f"group {group!r} out of range: this Penalty has {len(self._slices)} "
                             "group(s)")
        return int(group) % len(self._slices)

    def _refresh(self) -> None:
        """The module's current parameters (re-resolved by name when one was replaced), and the
        factors on their device."""
        followed = self._followed
        if followed is not None and not followed.unchanged(self._params):
            self._adopt(followed.resolve())
        if self._params and self._params[0].device != self._l1s.device:
            self._l1s, self._l2s = self._factor_tensors(self._params[0].device)
            self._splits.clear()

    def _factor_tensors(self, device) -> tuple:
        """One float64 entry per parameter, made from the groups' factors (a meta tensor holds
        no values to move)."""
        per_tensor = [(f, s.stop - s.start) for f, s in zip(self._factors, self._slices)]
        return tuple(torch.tensor([f[column] for f, n in per_tensor for _ in range(n)],
                                  dtype=torch.float64, device=device) for column in (0, 1))

    # ------------------------------------------------------------------------------- penalty

    def __call__(self) -> torch.Tensor:
        """The total penalty: a 0-dim tensor (fp32, fp64 if every parameter is fp64),
        differentiable in every parameter. `loss = loss + penalty()`."""
        self._refresh()
        if self._sharded is not None:
            total = distributed.value(self._sharded, self._l1s, self._l2s,
                                      functional.value_many)
        else:
            with _naming(self._names):
                total = functional._value_many(self._params, self._l1s, self._l2s, False,
                                               self._value_plan)
        if total.requires_grad and not torch.compiler.is_compiling():
            total.register_hook(self._on_backward)
            if self._accumulators is None and total.grad_fn is not None:
                # Holding the parameters' AccumulateGrad nodes (as DDP and FSDP do) spares
                # autograd re-creating one per parameter at every call once the last graph is
                # gone: a quarter of a recorded call's host time on many small tensors.
                self._accumulators = total.grad_fn.next_functions
        return total

    def _on_backward(self, _grad) -> None:
        # runs inside backward, before the gradients reach p.grad: look once backward is done
        torch.autograd.Variable._execution_engine.queue_callback(self._note_backward)

    def _note_backward(self) -> None:
        p = next((p for p in self._params if p.grad is not None), None)
        self._after_backward = None if p is None else (p, weakref.ref(p.grad), p.grad._version)

    def _warn_if_both_forms(self) -> None:
        """accumulate_() right after a backward through penalty(), into the gradients that
        backward wrote and nothing has touched since: the same step uses both forms."""
        mark, self._after_backward = self._after_backward, None
        if mark is None or self._warned_both:
            return
        p, grad, version = mark
        if p.grad is not None and p.grad is grad() and p.grad._version == version:
            self._warned_both = True
            warnings.warn(_BOTH_FORMS, UserWarning, stacklevel=3)

    def accumulate_(self) -> torch.Tensor:
        """After loss.backward(): p.grad += grad(p) for every parameter that requires grad
        (p.grad is created where it is None) in one fused multi-tensor pass. Returns the total
        penalty (every parameter's, frozen ones included), detached."""
        self._refresh()
        if self._after_backward is not None:
            self._warn_if_both_forms()
        if self._sharded is not None:
            return distributed.accumulate(self._sharded, self._l1s, self._l2s,
                                          functional.accumulate_many_,
                                          functional.value_many)
        if _plan.eager() and self._l1s.is_cpu:
            # p.grad read, checked and written in C++; None: a p.grad is missing or not plain
            got = self._grad_plan.accumulate_grads(self._params, self._l1s, self._l2s, False)
            if got is not None:
                return torch.scalar_tensor(got[0], dtype=got[1])
        pattern = _requires_grad(self._params)
        if all(pattern):
            trainable, l1s, l2s, split = self._params, self._l1s, self._l2s, None
        else:
            split = self._split(pattern)
            trainable = split.trainable
            l1s = self._l1s.index_select(0, split.trainable_at)
            l2s = self._l2s.index_select(0, split.trainable_at)
        with torch.no_grad():
            grads = _grads(trainable)
            if _any_none(grads):
                for i, p in enumerate(trainable):
                    if grads[i] is None:
                        p.grad = grads[i] = torch.zeros_like(p)
            with _naming(self._names if split is None else split.trainable_names):
                total = functional.accumulate_many_(trainable, grads, l1s, l2s)
            if split is not None and split.frozen:
                with _naming(split.frozen_names):
                    rest = functional.value_many(
                        split.frozen, self._l1s.index_select(0, split.frozen_at),
                        self._l2s.index_select(0, split.frozen_at))
                fp64 = total.dtype == rest.dtype == torch.float64
                total = (total.double() + rest.double()).to(torch.float64 if fp64 else torch.float32)
        return total

    def _split(self, pattern: tuple) -> "_Split":
        split = self._splits.get(pattern)
        if split is None:
            kept = [i for i, keep in enumerate(pattern) if keep]
            dropped = [i for i, keep in enumerate(pattern) if not keep]
            device = self._l1s.device
            split = _Split([self._params[i] for i in kept],
                           torch.tensor(kept, dtype=torch.long, device=device),
                           [self._names[i] for i in kept],
                           [self._params[i] for i in dropped],
                           torch.tensor(dropped, dtype=torch.long, device=device),
                           [self._names[i] for i in dropped])
            self._splits[pattern] = split
        return split

    # --------------------------------------------------------------------------------- hooks

    def step_pre_hook(self, optimizer, args, kwargs) -> None:
        """For optimizer.register_step_pre_hook: adds the penalty gradients before every step."""
        self.accumulate_()

    def attach(self, optimizer):
        """Registers step_pre_hook on the optimizer; returns the removable handle."""
        return optimizer.register_step_pre_hook(self.step_pre_hook)

    # -------------------------------------------------------------------- proximal step

    def prox_(self, lr):
        """The proximal elastic-net step on every selected parameter with its group's l1/l2, in
        one call: p <- sign(p) * max(|p| - lr*l1, 0) / (1 + 2*lr*l2). Returns ProxResult."""
        return _prox.penalty_prox(self, lr)

    def attach_prox(self, optimizer):
        """prox_ after every optimizer.step(), with each parameter's lr read from its param
        group at that step (schedulers work); returns the removable handle."""
        return _prox.attach_prox(self, optimizer)
