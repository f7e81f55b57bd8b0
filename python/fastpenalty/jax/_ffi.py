"""The XLA FFI targets of fastpenalty: libfastpenalty_jax (csrc/jax/) loaded with ctypes and
registered with jax.ffi once, and one function per target that emits the call.

Targets (all factors and cotangents are operands, so new values never recompile):
    fastpenalty_value_many(l1s, l2s, *ws) -> value
    fastpenalty_grad_many(l1s, l2s, ct, *ws) -> gs            g_i = ct * grad(w_i)
    fastpenalty_accumulate_many(l1s, l2s, *ws, *gs) -> value, gs  (each g aliased: g += grad)
    fastpenalty_sums(*ws) -> (n, 2) per tensor (sum|w|, sum w^2)
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import jax
import numpy as np

from .._cmake import jax_library_path

_OPS = ("value_many", "grad_many", "accumulate_many", "sums")

_BUILD_HINT = (
    "fastpenalty was built without its JAX FFI handlers (jaxlib's XLA FFI headers were not in the "
    "build environment). Rebuild it with them: FASTPENALTY_JAX=1 pip install 'fastpenalty[jax]' "
    "(from source), or pip install --no-build-isolation in an environment that already has jax."
)


def library_path() -> Path | None:
    """libfastpenalty_jax beside fastpenalty._core, or in the build directory _core is linked from."""
    path = jax_library_path()
    return None if path is None else Path(path)


def _load() -> tuple[ctypes.CDLL, list[str]]:
    path = library_path()
    if path is None:
        raise ImportError(_BUILD_HINT)
    lib = ctypes.CDLL(str(path))
    platforms = ["cpu"]
    for op in _OPS:
        jax.ffi.register_ffi_target(f"fastpenalty_{op}", jax.ffi.pycapsule(getattr(lib, f"fp_jax_{op}")),
                                    platform="cpu")
    # A CUDA build of the handlers exports fp_jax_<op>_cuda (see csrc/jax/ffi_handlers.cpp).
    if all(hasattr(lib, f"fp_jax_{op}_cuda") for op in _OPS):
        for op in _OPS:
            jax.ffi.register_ffi_target(f"fastpenalty_{op}", jax.ffi.pycapsule(getattr(lib, f"fp_jax_{op}_cuda")),
                                        platform="CUDA")
        platforms.append("cuda")
    return lib, platforms


_LIB, PLATFORMS = _load()
_LIB.fp_jax_xla_ffi_version.restype = ctypes.c_char_p
XLA_FFI_VERSION = _LIB.fp_jax_xla_ffi_version().decode()


def _value_type(ws) -> jax.ShapeDtypeStruct:
    """float64 when every weight is float64 (the contract), float32 otherwise."""
    all_f64 = len(ws) > 0 and all(w.dtype == np.float64 for w in ws)
    return jax.ShapeDtypeStruct((), np.float64 if all_f64 else np.float32)


def value_many(ws, l1s, l2s):
    return jax.ffi.ffi_call("fastpenalty_value_many", _value_type(ws), vmap_method="sequential")(l1s, l2s, *ws)


def grad_many(ws, l1s, l2s, ct):
    outs = [jax.ShapeDtypeStruct(w.shape, w.dtype) for w in ws]
    return jax.ffi.ffi_call("fastpenalty_grad_many", outs, vmap_method="sequential")(l1s, l2s, ct, *ws)


def accumulate_many(ws, gs, l1s, l2s):
    n = len(ws)
    outs = [_value_type(ws)] + [jax.ShapeDtypeStruct(g.shape, g.dtype) for g in gs]
    # Operand 2 + n + i (g_i) is result 1 + i: XLA updates each g in place when it can.
    aliases = {2 + n + i: 1 + i for i in range(n)}
    results = jax.ffi.ffi_call("fastpenalty_accumulate_many", outs, vmap_method="sequential",
                               input_output_aliases=aliases)(l1s, l2s, *ws, *gs)
    return results[0], list(results[1:])


def sums(ws, dtype):
    out = jax.ShapeDtypeStruct((len(ws), 2), dtype)
    return jax.ffi.ffi_call("fastpenalty_sums", out, vmap_method="sequential")(*ws)
