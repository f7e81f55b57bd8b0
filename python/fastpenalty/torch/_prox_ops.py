"""The fastpenalty::prox_many_ custom op: the proximal elastic-net step over a list of tensors.

    prox_many_(Tensor(a!)[] ws, Tensor lrs, Tensor l1s, Tensor l2s, bool check_finite)
        -> (Tensor value, Tensor zeros)

Every ws[i] <- sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2) in place (per-element math:
csrc/common/penalty_math.h); value is l1*sum|w'| + l2*sum w'^2 of the result (float64 iff every
w is float64, else float32) and zeros the count of exact zeros after the step (int64), both
0-dim on the weights' device. lrs, l1s and l2s are float64 tensors with one entry, or one per
tensor, on that device, so a compiled graph takes them as inputs (a new learning rate is new
data, not a new graph). The body is the CPU kernel, register_kernel("cuda") adds the CUDA one
and the fake kernel serves tracing. The op writes its inputs like an optimizer step and has no
autograd formula: fastpenalty.torch.functional.prox_many_ runs it under no_grad.
"""
import torch
from torch import Tensor

from .. import _core
from . import _checks
from ._layout import DTYPE_CODES, byte_span, first_overlap, is_dense, may_overlap_itself
from ._outputs import value_dtype

FACTOR_NAMES = ("lr", "l1", "l2")


def check_target(w, name: str) -> None:
    """w is written in place: everything that must hold before a single byte moves (metadata
    only, so the fake kernel runs it too)."""
    _checks.weight(w, name)
    if (not torch.compiler.is_compiling() and w.is_inference()
            and not torch.is_inference_mode_enabled()):
        raise ValueError(f"{name} is an inference tensor and cannot be written outside "
                         "torch.inference_mode()")
    if may_overlap_itself(w):
        raise ValueError(f"{name} has strides {tuple(w.stride())} under which elements may "
                         "share memory (an expanded view?); it cannot be written in place")


def check_targets(ws, names) -> None:
    for w, name in zip(ws, names):
        check_target(w, name)
    _checks.many(ws, "ws")  # one device for all


def require_disjoint(ws, names) -> None:
    """No two tensors of the call may share memory: each is written."""
    hit = first_overlap([], [byte_span(w) for w in ws])
    if hit is not None:
        _, i, _, j = hit
        raise ValueError(f"{names[i]} and {names[j]} share memory; tensors updated in place "
                         "must not overlap")


def _check_factor_tensors(ws, factors) -> None:
    device = ws[0].device if ws else factors[0].device
    for f, name in zip(factors, FACTOR_NAMES):
        _checks.factor_tensor(f, name, len(ws), device)


def names_of(n: int) -> list:
    return [f"ws[{i}]" for i in range(n)]


def rounded_value(v: float, codes) -> Tensor:
    """The C ABI's double value as the 0-dim CPU tensor of the result dtype (a float32 beyond
    its range is inf, not an error)."""
    if codes and all(c == DTYPE_CODES[torch.float64] for c in codes):
        return torch.scalar_tensor(v, dtype=torch.float64)
    return torch.scalar_tensor(_core.as_float32(v), dtype=torch.float32)


def run_cpu(ws, lrs: list, l1s: list, l2s: list):
    """The CPU kernel over checked tensors: dense ones in place (the step is elementwise, so any
    dense order works), the others through a contiguous copy written back. Returns (value,
    zeros) as 0-dim tensors."""
    staged, ptrs = [], []
    for w in ws:
        if is_dense(w) and not w.is_neg():
            ptrs.append(w.data_ptr())
        else:
            copy = w.resolve_neg().contiguous() if w.is_neg() else w.contiguous()
            staged.append((w, copy))
            ptrs.append(copy.data_ptr())
    codes = [DTYPE_CODES[w.dtype] for w in ws]
    v, zeros = _core.prox_many(ptrs, [w.numel() for w in ws], codes, lrs, l1s, l2s)
    for w, copy in staged:
        w.copy_(copy)
    return rounded_value(v, codes), torch.scalar_tensor(zeros, dtype=torch.int64)


def require_finite_cpu(ws, names) -> None:
    for w, name in zip(ws, names):
        if w.numel() and not bool(torch.isfinite(w).all()):
            raise ValueError(f"{name} contains NaN or Inf (check_finite=True)")


def empty_result(device):
    return (torch.zeros((), dtype=torch.float32, device=device),
            torch.zeros((), dtype=torch.int64, device=device))


@torch.library.custom_op("fastpenalty::prox_many_", mutates_args=("ws",), device_types="cpu")
def prox_many_(ws: list[Tensor], lrs: Tensor, l1s: Tensor, l2s: Tensor,
               check_finite: bool) -> tuple[Tensor, Tensor]:
    _check_factor_tensors(ws, (lrs, l1s, l2s))
    if not ws:
        return empty_result(lrs.device)
    names = names_of(len(ws))
    check_targets(ws, names)
    require_disjoint(ws, names)
    factors = [_checks.factor_values(f.reshape(-1).tolist(), name)
               for f, name in zip((lrs, l1s, l2s), FACTOR_NAMES)]
    if check_finite:
        require_finite_cpu(ws, names)
    return run_cpu(ws, *factors)


@prox_many_.register_kernel("cuda")
def _(ws, lrs, l1s, l2s, check_finite):
    from ._cuda import kernels, require_finite

    _check_factor_tensors(ws, (lrs, l1s, l2s))
    if not ws:
        return empty_result(lrs.device)
    names = names_of(len(ws))
    check_targets(ws, names)
    require_disjoint(ws, names)
    if check_finite:
        require_finite(ws, names)
    staged = [w if w.is_contiguous() and not w.is_neg() else
              (w.resolve_neg() if w.is_neg() else w).contiguous() for w in ws]
    value, zeros = kernels().prox_many_(staged, lrs.reshape(-1), l1s.reshape(-1), l2s.reshape(-1))
    for w, copy in zip(ws, staged):
        if copy is not w:
            w.copy_(copy)
    return value.to(value_dtype([w.dtype for w in ws])), zeros.to(torch.int64)


@prox_many_.register_fake
def _(ws, lrs, l1s, l2s, check_finite):
    _check_factor_tensors(ws, (lrs, l1s, l2s))
    check_targets(ws, names_of(len(ws)))
    device = ws[0].device if ws else lrs.device
    return (torch.empty((), dtype=value_dtype([w.dtype for w in ws]), device=device),
            torch.empty((), dtype=torch.int64, device=device))
