"""Arrays of other frameworks (JAX, CuPy, TensorFlow, ...) through DLPack, without a copy.

An object that is neither a NumPy array nor a torch tensor but has ``__dlpack__`` is viewed, not
copied: CPU memory as a NumPy array (``np.from_dlpack``), CUDA memory as a torch tensor
(``torch.from_dlpack``, which needs a CUDA build of torch). The NumPy or torch path then does the
work, and new arrays go back to the caller's framework through its own ``from_dlpack`` (the array
API namespace, or the framework's top-level module); a framework without one gets the NumPy array
(or torch tensor). Values of CPU arrays are Python floats, as for NumPy; values of CUDA arrays stay
on the device, as for torch.

In-place updates (``accumulate_``) write through the view, so they need a writable buffer: a JAX
array (immutable by design) or an array exported read-only is refused with the reason before
anything is written.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _numpy_api
from ._dtypes import BFLOAT16_DTYPE

# DLPack device types (DLDeviceType).
_CPU, _CUDA, _CUDA_HOST, _CUDA_MANAGED = 1, 2, 3, 13
_HOST = (_CPU, _CUDA_HOST)
_DEVICE = (_CUDA, _CUDA_MANAGED)

# Frameworks whose arrays are immutable, whatever flags their DLPack export carries.
_IMMUTABLE = {"jax": "jax.Array", "jaxlib": "jax.Array", "tensorflow": "tf.Tensor"}


def _torch_module():
    return sys.modules.get("torch")


def is_foreign(x) -> bool:
    """True for an object that speaks DLPack and is neither a NumPy array nor a torch tensor."""
    if isinstance(x, np.ndarray):
        return False
    torch = _torch_module()
    if torch is not None and isinstance(x, torch.Tensor):
        return False
    return hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")


def any_foreign(*groups) -> bool:
    return any(is_foreign(x) for group in groups for x in group)


def _framework(x) -> str:
    return type(x).__module__.split(".")[0]


def _device_type(x) -> int:
    if isinstance(x, np.ndarray):
        return _CPU
    torch = _torch_module()
    if torch is not None and isinstance(x, torch.Tensor):
        return _CUDA if x.is_cuda else _CPU
    if not hasattr(x, "__dlpack_device__"):
        return _CPU  # an array-like (list, scalar) in a list of arrays: NumPy converts it
    return int(x.__dlpack_device__()[0])


def _on_device(xs, names) -> bool:
    """Whether the arrays live in CUDA memory (all of them) or host memory (all of them)."""
    kinds = [_device_type(x) for x in xs]
    for k, name in zip(kinds, names):
        if k not in _HOST and k not in _DEVICE:
            raise TypeError(f"{name} lives on DLPack device type {k}; fastpenalty handles CPU and CUDA memory")
    on_device = [k in _DEVICE for k in kinds]
    if any(on_device) and not all(on_device):
        raise ValueError(f"{', '.join(names)} must all be in CPU memory or all in CUDA memory")
    return bool(on_device) and all(on_device)


# ----------------------------------------------------------------------------- imports (views)
def _host_view(x, name: str) -> np.ndarray:
    """A NumPy view of host memory. NumPy has no bfloat16; torch imports it and hands NumPy the
    same bytes, reinterpreted as ml_dtypes.bfloat16."""
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__"):
        return np.asarray(x)
    try:
        return np.from_dlpack(x)
    except (RuntimeError, BufferError, TypeError, ValueError) as exc:
        numpy_error = exc
    torch = _torch_module()
    if torch is None:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        t = x if isinstance(x, torch.Tensor) else torch.from_dlpack(x)
        if t.dtype == torch.bfloat16 and BFLOAT16_DTYPE is not None:
            return t.view(torch.int16).numpy().view(BFLOAT16_DTYPE)
        dtype = str(t.dtype).replace("torch.", "")
        raise TypeError(f"{name} has dtype {dtype}; fastpenalty supports float32, float64, float16 and bfloat16")
    raise TypeError(
        f"NumPy cannot import {name} ({type(x).__name__}) through DLPack: {numpy_error}. "
        "bfloat16 arrays need torch and ml_dtypes installed to be read without a copy"
    )


def _device_view(x, name: str):
    """A torch view of CUDA memory."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        why = "is not installed" if torch is None else "has no usable CUDA here"
        raise RuntimeError(
            f"{name} ({type(x).__name__}) is in CUDA memory; fastpenalty reaches CUDA memory through "
            f"PyTorch, which {why}. Install a CUDA build of torch, or move the array to the CPU"
        )
    return x if isinstance(x, torch.Tensor) else torch.from_dlpack(x)


def _writable(g, name: str) -> None:
    """Refuses buffers that must not be written, before anything is written."""
    framework = _framework(g)
    if framework in _IMMUTABLE:
        hint = (" Inside jax.jit use fastpenalty.jax.value_and_grad_many(..., add_to=grads), or write "
                "g = g + fastpenalty.grad(w, l1, l2)." if framework in ("jax", "jaxlib") else
                " Write g = g + fastpenalty.grad(w, l1, l2) instead.")
        raise ValueError(f"{name} is a {_IMMUTABLE[framework]}, which is immutable: accumulate_ cannot add "
                         f"into it in place.{hint}")


def _host_target(g, name: str) -> np.ndarray:
    _writable(g, name)
    view = _host_view(g, name)
    if not view.flags.writeable:
        raise ValueError(f"{name} ({type(g).__name__}) was exported read-only through DLPack: accumulate_ "
                         "cannot add into it in place")
    return view


# ----------------------------------------------------------------------------- exports
def _exportable(out):
    """out as something every DLPack consumer can import: NumPy cannot export bfloat16, torch can."""
    if isinstance(out, np.ndarray) and BFLOAT16_DTYPE is not None and out.dtype == BFLOAT16_DTYPE:
        torch = _torch_module()
        if torch is not None:
            return torch.from_numpy(out.view(np.int16)).view(torch.bfloat16)
    return out


def _importer(like):
    namespace = getattr(like, "__array_namespace__", None)
    if namespace is not None:
        fn = getattr(namespace(), "from_dlpack", None)
        if fn is not None:
            return fn
    framework = _framework(like)
    if framework == "tensorflow":
        tf = sys.modules["tensorflow"]
        return lambda a: tf.experimental.dlpack.from_dlpack(a.__dlpack__())
    return getattr(sys.modules.get(framework), "from_dlpack", None)


def as_kind_of(like, out):
    """out (a NumPy array or torch tensor) as an array of like's framework, where it can import one."""
    importer = _importer(like)
    if importer is None:
        return out
    try:
        return importer(_exportable(out))
    except (TypeError, RuntimeError, BufferError, ValueError):
        return out


# ----------------------------------------------------------------------------- operations
def _torch_functional():
    from .torch import functional

    return functional


def value(w, l1: float, l2: float, check_finite: bool = False):
    if _on_device([w], ["w"]):
        v = _torch_functional().l1_l2(_device_view(w, "w"), l1, l2, check_finite=check_finite)
        return as_kind_of(w, v.detach())
    return _numpy_api.value(_host_view(w, "w"), l1, l2, check_finite)


def grad(w, l1: float, l2: float, check_finite: bool = False):
    if _on_device([w], ["w"]):
        return as_kind_of(w, _torch_functional().grad(_device_view(w, "w"), l1, l2, check_finite=check_finite))
    return as_kind_of(w, _numpy_api.grad(_host_view(w, "w"), l1, l2, check_finite))


def accumulate_(w, g, l1: float, l2: float, check_finite: bool = False):
    if _on_device([w, g], ["w", "g"]):
        _writable(g, "g")
        v = _torch_functional().accumulate_(_device_view(w, "w"), _device_view(g, "g"), l1, l2,
                                            check_finite=check_finite)
        return as_kind_of(w, v.detach())
    target = _host_target(g, "g")
    return _numpy_api.accumulate_(_host_view(w, "w"), target, l1, l2, check_finite)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}[{i}]" for i in range(n)]


def value_many(ws, l1, l2, check_finite: bool = False):
    ws = list(ws)
    names = _names("ws", len(ws))
    if _on_device(ws, names):
        views = [_device_view(w, name) for w, name in zip(ws, names)]
        v = _torch_functional().value_many(views, l1, l2, check_finite=check_finite)
        return as_kind_of(ws[0], v.detach())
    return _numpy_api.value_many([_host_view(w, name) for w, name in zip(ws, names)], l1, l2, check_finite)


def accumulate_many_(ws, gs, l1, l2, check_finite: bool = False):
    ws, gs = list(ws), list(gs)
    if len(ws) != len(gs):
        raise ValueError(f"ws has {len(ws)} arrays but gs has {len(gs)}")
    wnames, gnames = _names("ws", len(ws)), _names("gs", len(gs))
    if _on_device(ws + gs, wnames + gnames):
        for g, name in zip(gs, gnames):
            _writable(g, name)
        wv = [_device_view(w, name) for w, name in zip(ws, wnames)]
        gv = [_device_view(g, name) for g, name in zip(gs, gnames)]
        v = _torch_functional().accumulate_many_(wv, gv, l1, l2, check_finite=check_finite)
        return as_kind_of(ws[0], v.detach())
    targets = [_host_target(g, name) for g, name in zip(gs, gnames)]
    views = [_host_view(w, name) for w, name in zip(ws, wnames)]
    return _numpy_api.accumulate_many_(views, targets, l1, l2, check_finite)


__all__ = ["is_foreign", "any_foreign", "as_kind_of", "value", "grad", "accumulate_", "value_many",
           "accumulate_many_"]
