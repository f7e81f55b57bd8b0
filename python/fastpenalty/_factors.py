"""Validation of penalty factors: finite and >= 0, errors naming the factor."""

from __future__ import annotations

import math
import numbers
from typing import Sequence


def check_factor(value, name: str) -> float:
    """A plain number as a float, or ValueError/TypeError naming the factor."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
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
    if isinstance(value, numbers.Real) or getattr(value, "ndim", None) == 0:
        return [check_factor(value, name)]
    if not isinstance(value, Sequence) and not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a float or a sequence of floats, got {type(value).__name__}")
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
