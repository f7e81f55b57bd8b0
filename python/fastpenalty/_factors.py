"""Validation of penalty factors: finite and >= 0, errors naming the factor."""

from __future__ import annotations

import math
import numbers
from typing import Sequence


def _dtype_kind(value):
    """NumPy's dtype kind of an array, scalar or torch tensor ('b', 'c', 'f', 'i', ...), or
    None for values without a dtype."""
    dtype = getattr(value, "dtype", None)
    if dtype is None:
        return None
    kind = getattr(dtype, "kind", None)
    if isinstance(kind, str):  # NumPy
        return kind
    if getattr(dtype, "is_complex", False):  # torch
        return "c"
    if str(dtype) == "torch.bool":
        return "b"
    return "f" if getattr(dtype, "is_floating_point", False) else "i"


def refuse_non_real(value, name: str) -> None:
    """TypeError for factors that are no real number, in every form: bool (True, np.bool_,
    np.array(True), a bool tensor), complex, strings."""
    kind = _dtype_kind(value)
    if isinstance(value, (bool, str, bytes)) or (kind is not None and kind not in "fiu"):
        what = type(value).__name__ if kind is None else f"{type(value).__name__} of dtype {value.dtype}"
        raise TypeError(f"{name} must be a real number, got {what}")


def check_factor(value, name: str) -> float:
    """A plain number as a float, or ValueError/TypeError naming the factor. The same set of
    types is accepted for NumPy and torch inputs: real numbers, NumPy real scalars and 0-d
    arrays, 0-dim real tensors; bool is refused in every form."""
    refuse_non_real(value, name)
    if not isinstance(value, numbers.Real):
        try:  # NumPy 0-d arrays and other float-convertible scalars
            if getattr(value, "ndim", 0) != 0:
                raise TypeError
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    f = float(value)
    if not math.isfinite(f) or f < 0.0:
        raise ValueError(f"{name} must be finite and >= 0, got {f!r}")
    return f


def check_factor_list(value, name: str, count: int) -> list[float]:
    """One factor for all tensors, or one per tensor (a sequence of length `count`)."""
    is_sequence = (isinstance(value, Sequence) and not isinstance(value, (str, bytes))) or (
        getattr(value, "ndim", 0) or 0) >= 1
    if not is_sequence:
        return [check_factor(value, name)]
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} tensors")
    return [check_factor(v, f"{name}[{i}]") for i, v in enumerate(values)]


def factor_lists(l1, l2, count: int) -> tuple[list[float], list[float]]:
    """l1 and l2 as two lists of equal length: 1 (broadcast) or `count`."""
    l1s, l2s = check_factor_list(l1, "l1", count), check_factor_list(l2, "l2", count)
    if len(l1s) != len(l2s):
        l1s, l2s = (l1s * count if len(l1s) == 1 else l1s), (l2s * count if len(l2s) == 1 else l2s)
    return l1s, l2s
