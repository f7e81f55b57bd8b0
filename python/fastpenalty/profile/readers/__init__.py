"""One reader per checkpoint format. Each ``read(path)`` yields ``Item``s one tensor at a time, in
file order, as NumPy arrays on the CPU (torch is needed only for torch's own pickle formats).

A reader checks every size that the file claims against the file before it allocates, and it
reports tied tensors itself (it alone knows what shares storage in its format): an item with
``tied_to`` set carries no array and names the first tensor read from the same bytes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Item:
    name: str
    array: np.ndarray | None = None
    skip: str | None = None  # why this entry is not a weight
    tied_to: str | None = None  # the name this one shares its storage with


FLOAT_KINDS = ("float16", "float32", "float64", "bfloat16")


_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def skip_reason(name: str, dtype_name: str) -> str | None:
    """Why an entry is not a weight (a normalization statistic, a non-float), or None."""
    if name.rsplit(".", 1)[-1] in _BUFFER_SUFFIXES:
        return "normalization statistic, not a parameter"
    if dtype_name not in FLOAT_KINDS:
        return f"dtype {dtype_name} is not a float weight"
    return None


def float_weight(name: str, array: np.ndarray) -> Item:
    """An Item for ``array``, or a skipped one when it is not a weight."""
    reason = skip_reason(name, array.dtype.name)
    return Item(name, skip=reason) if reason else Item(name, array)


def bfloat16_dtype() -> np.dtype:
    from ..._dtypes import BFLOAT16_DTYPE
    if BFLOAT16_DTYPE is None:
        raise ValueError("it holds bfloat16 tensors, which NumPy reads only with ml_dtypes: "
                         "pip install ml_dtypes")
    return BFLOAT16_DTYPE
