"""Fill a model's tensors with its initialization, fast and without a second copy.

Every tensor is cut into fixed blocks of ``BLOCK`` elements and each block draws from its own
NumPy stream seeded by (seed, tensor index, block index). The numbers therefore depend only on
the seed — not on the thread count, the backend or the order the blocks run in — and the blocks
are filled by a small thread pool (NumPy's generators release the GIL). Draws are float32 and
are rounded into the requested dtype, so a bfloat16 model is the float32 model rounded.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .architectures import TensorSpec

BLOCK = 1 << 20

_DTYPE_ALIASES = {
    "float32": "float32", "fp32": "float32", "f32": "float32",
    "float64": "float64", "fp64": "float64", "f64": "float64", "double": "float64",
    "float16": "float16", "fp16": "float16", "f16": "float16", "half": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
}


def canonical_dtype(dtype) -> str:
    """'float32' | 'float64' | 'float16' | 'bfloat16' from a name, a NumPy or a torch dtype."""
    key = str(dtype).lower().replace("torch.", "")
    if key in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[key]
    raise ValueError(f"unsupported dtype {dtype!r}: expected one of float32, float64, float16, bfloat16")


def _numpy_dtype(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def _fill_block(flat: np.ndarray, spec: TensorSpec, seed: int, tensor_index: int, block: int) -> None:
    start = block * BLOCK
    out = flat[start:start + BLOCK]
    kind, scale = spec.init.kind, spec.init.scale
    if kind == "zeros":
        out[...] = 0
        return
    if kind == "ones":
        out[...] = 1
        return
    rng = np.random.default_rng([seed, tensor_index, block])
    direct = out.dtype == np.float32  # draw straight into the output, no temporary
    draw = out if direct else np.empty(out.shape, np.float32)
    if kind == "normal":
        rng.standard_normal(out=draw, dtype=np.float32)
        draw *= np.float32(scale)
    elif kind == "uniform":
        rng.random(out=draw, dtype=np.float32)
        draw *= np.float32(2 * scale)
        draw -= np.float32(scale)
    else:  # pragma: no cover - architectures only use the kinds above
        raise ValueError(f"unknown init kind {kind!r}")
    if not direct:
        out[...] = draw


def _allocate(spec: TensorSpec, dtype: str, backend: str):
    """The empty tensor in the backend's type and a flat NumPy view of its memory."""
    if backend == "numpy":
        array = np.empty(spec.shape, _numpy_dtype(dtype))
        return array, array.reshape(-1)
    import torch
    tensor = torch.empty(spec.shape, dtype=getattr(torch, dtype))
    if dtype == "bfloat16":  # NumPy has no bfloat16: view the bits through ml_dtypes
        flat = tensor.view(-1).view(torch.int16).numpy().view(_numpy_dtype(dtype))
    else:
        flat = tensor.view(-1).numpy()
    return tensor, flat


def fill(specs: list[TensorSpec], dtype="float32", seed: int = 0, backend: str = "torch",
         device: str = "cpu", threads: int | None = None, progress=None) -> dict:
    """{name: tensor}; ``progress(n_elements)`` is called after each tensor when given."""
    dtype = canonical_dtype(dtype)
    if backend not in ("torch", "numpy"):
        raise ValueError(f"backend must be 'torch' or 'numpy', not {backend!r}")
    if backend == "numpy" and str(device) != "cpu":
        raise ValueError("the numpy backend only makes CPU arrays")
    threads = threads or min(os.cpu_count() or 1, 8)
    result = {}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for index, spec in enumerate(specs):
            tensor, flat = _allocate(spec, dtype, backend)
            n_blocks = -(-flat.size // BLOCK)
            list(pool.map(lambda b: _fill_block(flat, spec, seed, index, b), range(n_blocks)))
            if backend == "torch" and str(device) != "cpu":
                tensor = tensor.to(device)  # one tensor at a time: the CPU copy is freed here
            result[spec.name] = tensor
            if progress is not None:
                progress(flat.size)
    return result
