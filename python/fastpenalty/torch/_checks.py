"""Argument checks shared by the real kernels and the fake (tracing) kernels.

Everything here looks at metadata only (type, dtype, shape, device, strides, flags), so the
same checks run while torch.compile traces and again when the real kernel runs. The check that
needs real memory addresses (overlap between tensors) is in _overlap.
"""
import math

import torch

from ._layout import DTYPE_CODES, may_overlap_itself

SUPPORTED = "float32, float64, float16 and bfloat16"
# check_finite=True and a value that overflows (every element finite): NumPy's wording too
NOT_FINITE = "the penalty value is not finite (check_finite=True)"


def weight(t, name: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in DTYPE_CODES:
        raise TypeError(f"{name} has dtype {t.dtype}; supported dtypes are {SUPPORTED}")
    if t.is_nested:
        raise TypeError(f"{name} is a nested tensor; only dense (strided) tensors are supported")
    if t.layout != torch.strided:
        raise TypeError(f"{name} is a {t.layout} tensor; only dense (strided) tensors are supported")
    kind = t.device.type
    if kind not in ("cpu", "cuda", "meta"):
        raise NotImplementedError(
            f"{name} is on device '{t.device}'; only CPU and CUDA tensors are supported")


def target(w, g, wname: str, gname: str) -> None:
    """g is written with g += grad(w): everything that must hold before a single byte moves."""
    weight(g, gname)
    if g.shape != w.shape:
        raise ValueError(f"{gname} has shape {tuple(g.shape)} but {wname} has shape "
                         f"{tuple(w.shape)}; they must match")
    if g.dtype != w.dtype:
        raise ValueError(f"{gname} has dtype {g.dtype} but {wname} has dtype {w.dtype}; "
                         "they must match")
    if g.device != w.device:
        raise ValueError(f"{gname} is on {g.device} but {wname} is on {w.device}; "
                         "they must be on the same device")
    if g.requires_grad and torch.is_grad_enabled():
        raise ValueError(f"{gname} requires grad and cannot be written in place while "
                         "autograd records; pass a tensor that does not require grad (e.g. p.grad) "
                         "or call under torch.no_grad()")
    if (not torch.compiler.is_compiling() and g.is_inference()  # dynamo cannot trace is_inference
            and not torch.is_inference_mode_enabled()):
        raise ValueError(f"{gname} is an inference tensor and cannot be written outside "
                         "torch.inference_mode()")
    if may_overlap_itself(g):
        raise ValueError(f"{gname} has strides {tuple(g.stride())} under which elements "
                         "may share memory (an expanded view?); it cannot be written in place")


def many(ws, name: str) -> None:
    """Every tensor a supported float, all on one device. A quick pass first; the slow one only
    runs to name the culprit."""
    if not ws or (_plain_floats(ws) and _one_device(ws)):
        return
    for i, w in enumerate(ws):
        weight(w, f"{name}[{i}]")
    device = ws[0].device
    for i, w in enumerate(ws):
        if w.device != device:
            raise ValueError(f"{name}[{i}] is on {w.device} but {name}[0] is on {device}; all "
                             "tensors of one call must share a device")


def targets(ws, gs) -> None:
    if len(ws) != len(gs):
        raise ValueError(f"ws has {len(ws)} tensors but gs has {len(gs)}; one g per w")
    many(ws, "ws")
    if (_plain_floats(gs) and all(g.shape == w.shape and g.dtype == w.dtype for w, g in zip(ws, gs))
            and _one_device(list(ws) + list(gs)) and all(g.is_contiguous() for g in gs)
            and (torch.compiler.is_compiling() or not any(g.is_inference() for g in gs))
            and not (torch.is_grad_enabled() and any(g.requires_grad for g in gs))):
        return
    for i, (w, g) in enumerate(zip(ws, gs)):
        target(w, g, f"ws[{i}]", f"gs[{i}]")


def _plain_floats(ts) -> bool:
    return all(isinstance(t, torch.Tensor) and t.dtype in DTYPE_CODES and t.layout == torch.strided
               and not t.is_nested for t in ts)


def _one_device(ts) -> bool:
    if not ts:
        return True
    if ts[0].is_cpu:
        return all(t.is_cpu for t in ts)
    device = ts[0].device
    return device.type in ("cuda", "meta") and all(t.device == device for t in ts)


def factor_tensor(f, name: str, count: int, device) -> None:
    """A factor reaching a kernel: float64 with one entry, or one per tensor, on the weights'
    device."""
    if not isinstance(f, torch.Tensor):
        raise TypeError(f"{name} must be a tensor here, got {type(f).__name__}")
    if f.dtype != torch.float64:
        raise TypeError(f"{name} must be a float64 tensor, got {f.dtype}")
    if f.dim() > 1 or f.numel() not in (1, count):
        raise ValueError(f"{name} must hold one factor or one per tensor ({count}); "
                         f"got shape {tuple(f.shape)}")
    if f.device != device:
        raise ValueError(f"{name} is on {f.device} but the weights are on {device}")


def factor_value(value: float, name: str) -> float:
    """Host-side check of one factor: finite and >= 0, as the contract asks."""
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def factor_values(values: list, name: str) -> list:
    if len(values) == 1:
        factor_value(values[0], name)
    # one pass in C for the common case: NaN and inf reach the sum
    elif values and not (min(values) >= 0.0 and math.isfinite(sum(values))):
        for i, v in enumerate(values):
            factor_value(v, f"{name}[{i}]")
    return values
