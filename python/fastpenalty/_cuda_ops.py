"""The CUDA path of the torch layer, over the kernels of ``fastpenalty._cuda``.

Every function launches on torch's current stream of the tensors' device, takes its buffers from
torch's caching allocators and never synchronizes the host, so a call can be captured in a CUDA
graph and sits inside a torch.compile graph as the body of a custom op. Factors stay on the device
(float64, one per tensor or one for all) and are read by the kernels.

A list of tensors reaches the kernels as tables passed by value in the launches' parameters
(addresses, sizes, dtypes; one launch per fastpenalty._cuda.SLOTS tensors), so nothing is cached,
pinned or copied: a call made while a CUDA graph is being captured records everything its replays
need in the graph itself, whichever stream and whether or not the list was seen before.
"""

from __future__ import annotations

import torch

from ._dtypes import BFLOAT16, FLOAT16, FLOAT32, FLOAT64

_CODES = {torch.float32: FLOAT32, torch.float64: FLOAT64, torch.float16: FLOAT16, torch.bfloat16: BFLOAT16}
_ext = None
_ready_devices: set[int] = set()


def _load():
    """fastpenalty._cuda, or an ImportError saying why it cannot be had."""
    global _ext
    if _ext is None:
        try:
            from . import _cuda
        except ImportError as exc:
            raise ImportError(
                "fastpenalty's CUDA kernels (fastpenalty._cuda) are not available: the package was built "
                f"without a CUDA compiler, or the module failed to load ({exc})") from exc
        _ext = _cuda
    return _ext


def unavailable_reason() -> str:
    """Why the CUDA kernels cannot run here ('' when they can)."""
    try:
        ext = _load()
    except ImportError as exc:
        return str(exc)
    if ext.available():
        return ""
    return (f"the CUDA runtime inside fastpenalty._cuda (version {ext.runtime_version()}) finds no usable "
            f"GPU: {ext.device_query_error() or 'no device'} (driver supports CUDA {ext.driver_version()})")


_available = False  # once a GPU was seen it stays usable: the torch layer asks before every call


def is_available() -> bool:
    """True when fastpenalty._cuda is built and sees a usable GPU; never raises."""
    global _available
    if not _available:
        _available = unavailable_reason() == ""
    return _available


def _kernels_on(device: torch.device):
    """The extension, with its kernels loaded on `device` (once per device)."""
    ext = _load()
    index = device.index
    if index not in _ready_devices:
        if not ext.available():
            raise RuntimeError(f"fastpenalty: cannot run on {device}: {unavailable_reason()}")
        ext.warm_up(index)
        _ready_devices.add(index)
    return ext


def _check_layout(ws, gs, device: torch.device) -> None:
    """What raw-pointer kernels rely on (the torch layer checks it all first; this is the backstop)."""
    for i, w in enumerate(ws):
        if w.device != device or not w.is_contiguous():
            raise ValueError(f"fastpenalty: ws[{i}] must be a contiguous tensor on {device}")
    if gs is not None:
        for i, (w, g) in enumerate(zip(ws, gs)):
            if g.device != device or not g.is_contiguous() or g.dtype != w.dtype or g.numel() != w.numel():
                raise ValueError(f"fastpenalty: gs[{i}] must be a contiguous tensor on {device} "
                                 f"with the shape and dtype of ws[{i}]")


def _check_factors(name: str, f: torch.Tensor, count: int, device: torch.device) -> None:
    if f.dtype != torch.float64 or f.device != device or f.dim() > 1 or not f.is_contiguous():
        raise ValueError(f"fastpenalty: {name} must be a contiguous float64 tensor on {device}")
    if f.numel() not in (1, count):
        raise ValueError(f"fastpenalty: {name} has {f.numel()} factors for {count} tensors")


def _result_dtype(ws) -> torch.dtype:
    return torch.float64 if ws and all(w.dtype == torch.float64 for w in ws) else torch.float32


_VALUE, _ACCUMULATE, _GRAD = 0, 1, 2  # the kernel's modes (fastpenalty._cuda.MODE_*)


def _multi_tensor(mode: int, ws, gs, l1s: torch.Tensor, l2s: torch.Tensor):
    """One pass over the list. Returns the 0-dim value for _VALUE/_ACCUMULATE, None for _GRAD."""
    if gs is not None and len(gs) != len(ws):
        raise ValueError(f"fastpenalty: {len(ws)} weights but {len(gs)} gradients")
    out_dtype = _result_dtype(ws)
    device = ws[0].device if ws else l1s.device
    if device.type != "cuda":
        raise ValueError(f"fastpenalty: _cuda_ops got tensors on {device}")
    for w in ws:
        if w.dtype not in _CODES:
            raise TypeError(f"fastpenalty: unsupported dtype {w.dtype}")
    _check_factors("l1s", l1s, len(ws), device)
    _check_factors("l2s", l2s, len(ws), device)
    if sum(w.numel() for w in ws) == 0:
        return None if mode == _GRAD else torch.zeros((), dtype=out_dtype, device=device)
    with torch.cuda.device(device):
        ext = _kernels_on(device)
        stream = torch.cuda.current_stream(device).cuda_stream
        _check_layout(ws, gs, device)
        w_ptrs = [w.data_ptr() for w in ws]
        g_ptrs = [g.data_ptr() for g in gs] if gs is not None else []
        ns = [w.numel() for w in ws]
        codes = [_CODES[w.dtype] for w in ws]
        if mode == _GRAD:
            scratch = out = None
            scratch_bytes = scratch_ptr = out_ptr = 0
        else:
            # from torch's caching allocator on this stream: inside a capture, from the graph's pool
            scratch_bytes = ext.scratch_bytes(len(ws), device.index)
            scratch = torch.empty(scratch_bytes, dtype=torch.uint8, device=device)
            out = torch.empty((), dtype=out_dtype, device=device)
            scratch_ptr, out_ptr = scratch.data_ptr(), out.data_ptr()
        ext.multi_tensor(mode, w_ptrs, g_ptrs, ns, codes, l1s.data_ptr(), l1s.numel(), l2s.data_ptr(), l2s.numel(),
                         scratch_ptr, scratch_bytes, out_ptr, out_dtype == torch.float64, device.index, stream)
    return out


def value_many(ws: list[torch.Tensor], l1s: torch.Tensor, l2s: torch.Tensor) -> torch.Tensor:
    """sum_i l1s[i] * sum|ws[i]| + l2s[i] * sum ws[i]^2 as a 0-dim tensor on the device (float64
    when every tensor is float64, else float32); one launch per SLOTS tensors plus one final sum."""
    return _multi_tensor(_VALUE, list(ws), None, l1s, l2s)


def accumulate_many_(ws: list[torch.Tensor], gs: list[torch.Tensor], l1s: torch.Tensor,
                     l2s: torch.Tensor) -> torch.Tensor:
    """gs[i] += grad(ws[i]) for every i, in the same pass that computes the value (returned as in
    value_many). A tensor whose two factors are 0 is left untouched."""
    return _multi_tensor(_ACCUMULATE, list(ws), list(gs), l1s, l2s)


def grad_many(ws: list[torch.Tensor], l1s: torch.Tensor, l2s: torch.Tensor) -> list[torch.Tensor]:
    """[grad(w) for w in ws] as new contiguous tensors, in one launch per SLOTS tensors."""
    ws = list(ws)
    outs = [torch.empty_like(w, memory_format=torch.contiguous_format) for w in ws]
    _multi_tensor(_GRAD, ws, outs, l1s, l2s)
    return outs


def prox_many_(ws: list[torch.Tensor], lrs: torch.Tensor, l1s: torch.Tensor,
               l2s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ws[i] = sign(w) * max(|w| - lrs[i]*l1s[i], 0) / (1 + 2*lrs[i]*l2s[i]) in place for every i
    (common/penalty_math.h: the CPU kernels' bits), in one launch per SLOTS tensors plus one final
    sum. Returns (value, zeros) on the device: the value of the new weights as value_many computes
    it from them (0-dim, float64 when every tensor is float64, else float32) and their count of
    exact zeros (0-dim int64). The tensors must not share memory. Factors are read on the device,
    so an invalid one (negative, not finite, lr*l1 or 2*lr*l2 not finite) cannot raise here without
    a host sync: nothing is written then, the value is NaN and the count -1; callers validate first."""
    ws = list(ws)
    out_dtype = _result_dtype(ws)
    device = ws[0].device if ws else lrs.device
    if device.type != "cuda":
        raise ValueError(f"fastpenalty: _cuda_ops got tensors on {device}")
    for w in ws:
        if w.dtype not in _CODES:
            raise TypeError(f"fastpenalty: unsupported dtype {w.dtype}")
    for name, f in (("lrs", lrs), ("l1s", l1s), ("l2s", l2s)):
        _check_factors(name, f, len(ws), device)
    value = torch.zeros((), dtype=out_dtype, device=device)
    zeros = torch.zeros((), dtype=torch.int64, device=device)
    if sum(w.numel() for w in ws) == 0:
        return value, zeros
    with torch.cuda.device(device):
        ext = _kernels_on(device)
        stream = torch.cuda.current_stream(device).cuda_stream
        _check_layout(ws, None, device)
        scratch_bytes = ext.prox_scratch_bytes(len(ws), device.index)
        scratch = torch.empty(scratch_bytes, dtype=torch.uint8, device=device)
        ext.prox([w.data_ptr() for w in ws], [w.numel() for w in ws], [_CODES[w.dtype] for w in ws],
                 lrs.data_ptr(), lrs.numel(), l1s.data_ptr(), l1s.numel(), l2s.data_ptr(), l2s.numel(),
                 scratch.data_ptr(), scratch_bytes, value.data_ptr(), out_dtype == torch.float64, zeros.data_ptr(),
                 device.index, stream)
    return value, zeros


def grad(w: torch.Tensor, l1: torch.Tensor, l2: torch.Tensor) -> torch.Tensor:
    """A new contiguous tensor l1 * sign(w) + 2 * l2 * w in w's dtype (one launch)."""
    device = w.device
    if device.type != "cuda" or not w.is_contiguous():
        raise ValueError(f"fastpenalty: _cuda_ops.grad needs a contiguous CUDA tensor, got one on {device}")
    if w.dtype not in _CODES:
        raise TypeError(f"fastpenalty: unsupported dtype {w.dtype}")
    _check_factors("l1", l1, 1, device)
    _check_factors("l2", l2, 1, device)
    out = torch.empty_like(w, memory_format=torch.contiguous_format)
    if w.numel() == 0:
        return out
    with torch.cuda.device(device):
        ext = _kernels_on(device)
        stream = torch.cuda.current_stream(device).cuda_stream
        ext.grad(w.data_ptr(), out.data_ptr(), w.numel(), _CODES[w.dtype], l1.data_ptr(), l2.data_ptr(),
                 device.index, stream)
    return out
