"""The eager CPU fast path's plans: `fastpenalty._core.TorchPlan` (csrc/python/torch_plan.h).

A training loop hands the same parameters (and, unless gradients are set to None, the same
gradients) to every call. A plan keeps the flat pointer/size/dtype arrays of its last call in
C++, with weak references to the tensors (so it never keeps a freed gradient alive); per call it
checks each tensor's identity and re-reads what can change on the same object (address, element
count, dtype, contiguity; a target's requires_grad), in C++ through torch's own Tensor
descriptors, registered here once. A new or changed object gets the full plain-tensor check
there too. Whatever a plan does not take (it answers None) goes through the Python checks.

`eager()` is the condition for any call past the dispatcher: no tracing, mode or functorch
transform that would have to see the call.
"""
import glob
import inspect
import operator
import os

import torch

from .. import _core
from ._layout import DTYPE_CODES

_READ = ("data_ptr", "numel", "is_contiguous", "is_neg", "is_inference", "grad", "dtype",
         "layout", "is_cpu", "is_nested", "requires_grad", "shape", "_version", "_cdata")


def _register() -> bool:
    """Hands torch's types and Tensor descriptors to the core; False (plans then take nothing)
    when this torch does not have them as expected, or nn.Parameter overrides one."""
    try:
        descriptors = {name: inspect.getattr_static(torch.Tensor, name) for name in _READ}
        if any(inspect.getattr_static(torch.nn.Parameter, name) is not d
               for name, d in descriptors.items()):
            return False
        _core.register_torch_types(torch.Tensor, torch.nn.Parameter,
                                   {code: dtype for dtype, code in DTYPE_CODES.items()},
                                   torch.strided, descriptors, torch._C._increment_version)
    except (AttributeError, TypeError):
        return False
    return True


READY = _register()


def _probes():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return [base, base[1:], base.t(), base[:, ::2], torch.empty(0), torch.nn.Parameter(base.clone()),
            *(torch.ones(3, dtype=d) for d in DTYPE_CODES)]


def _register_direct() -> bool:
    """Direct reads of already-checked tensors through libtorch's C shim (see torch_plan.h); off
    (every read through the Python bindings) unless the shim is found and agrees on probes."""
    if not READY:
        return False
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    names = sorted(glob.glob(os.path.join(lib, "libtorch_cpu.*")))
    return any(_core.register_torch_direct(name, _probes()) for name in names)


DIRECT = _register_direct()


def new() -> "_core.TorchPlan":
    return _core.TorchPlan()


try:
    _functorch_active = torch._C._functorch.peek_interpreter_stack
except AttributeError:  # unknown torch internals: never take the direct path
    def _functorch_active():
        return True


def eager() -> bool:
    """No tracing, mode or functorch transform that would have to see the call."""
    return not (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack()
                or torch._C._is_torch_function_mode_enabled() or _functorch_active() is not None)


_requires_grad = operator.attrgetter("requires_grad")


def any_requires_grad(ts) -> bool:
    return any(map(_requires_grad, ts))
