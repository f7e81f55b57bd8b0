""".safetensors, read with NumPy (no torch, no safetensors package): an 8-byte little-endian
header length, a JSON header {name: {dtype, shape, data_offsets}}, then the data. The header is
checked whole against the file size before any tensor is read; each tensor is then read alone.
Two names whose entries point at the same data range are one tied tensor."""

from __future__ import annotations

import json
import math
import os
import struct

import numpy as np

from . import Item, bfloat16_dtype, skip_reason

_MAX_HEADER = 100 << 20
_NUMPY = {"F16": "float16", "F32": "float32", "F64": "float64", "I8": "int8", "I16": "int16",
          "I32": "int32", "I64": "int64", "U8": "uint8", "U16": "uint16", "U32": "uint32",
          "U64": "uint64", "BOOL": "bool"}
_FLOATS = {"F16": "float16", "F32": "float32", "F64": "float64", "BF16": "bfloat16"}
_SIZES = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, **{k: np.dtype(v).itemsize for k, v in _NUMPY.items()}}


def _header(f, file_size: int) -> tuple[dict, int]:
    raw = f.read(8)
    if len(raw) < 8:
        raise ValueError("shorter than a safetensors header")
    (length,) = struct.unpack("<Q", raw)
    if length > min(_MAX_HEADER, file_size - 8):
        raise ValueError(f"header claims {length:,} bytes; the file has {file_size:,}")
    header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header, 8 + length


def _entry(name: str, info, data_size: int) -> tuple[str, tuple, int, int]:
    try:
        dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"malformed header entry for {name!r}") from None
    if not all(isinstance(d, int) and d >= 0 for d in (*shape, begin, end)):
        raise ValueError(f"malformed shape or offsets for {name!r}")
    size = _SIZES.get(dtype)
    if size is not None and end - begin != math.prod(shape) * size:
        raise ValueError(f"{name!r} claims shape {list(shape)} of {dtype} in {end - begin:,} bytes")
    if not begin <= end <= data_size:
        raise ValueError(f"{name!r} claims bytes {begin:,}..{end:,}; the data has {data_size:,}")
    return dtype, shape, begin, end


def read(path: str):
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        header, start = _header(f, file_size)
        entries = {name: _entry(name, info, file_size - start) for name, info in header.items()}
        first_of_range = {}
        for name, (code, shape, begin, end) in sorted(entries.items(), key=lambda e: e[1][2]):
            key = (code, shape, begin, end)
            if key in first_of_range and begin != end:
                yield Item(name, tied_to=first_of_range[key])
                continue
            first_of_range[key] = name
            reason = skip_reason(name, _FLOATS.get(code, code))
            if reason:
                yield Item(name, skip=reason)
                continue
            dtype = bfloat16_dtype() if code == "BF16" else np.dtype(_NUMPY[code])
            f.seek(start + begin)
            count = math.prod(shape)
            array = np.fromfile(f, dtype=dtype, count=count) if count else np.empty(0, dtype)
            if array.size != count:
                raise ValueError(f"{name!r} is cut short")
            item, array = Item(name, array.reshape(shape)), None
            yield item  # the consumer drops it before asking for the next: one tensor at a time
            del item
