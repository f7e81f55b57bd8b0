"""What the proximal step returns, for NumPy and torch alike."""

from __future__ import annotations

from typing import Any, NamedTuple


class ProxResult(NamedTuple):
    """The outcome of fastpenalty.prox_ / prox_many_ / Penalty.prox_.

    value: l1 * sum|w'| + l2 * sum w'^2 of the weights AFTER the step (a Python float for NumPy
           input; for torch a 0-dim tensor on the weights' device, float64 iff every weight is
           float64, else float32, never differentiable)
    zeros: how many elements are exactly 0 after the step (int for NumPy; a 0-dim int64 tensor
           on the device for torch)
    """

    value: Any
    zeros: Any
