"""fastpenalty for PyTorch: torch.library custom ops (fastpenalty::*), the functional forms and
Penalty, a whole model's penalty as one fused call.

    from fastpenalty.torch import Penalty, functional
"""
from . import functional
from ._penalty import DEFAULT_EXCLUDE, Penalty

__all__ = ["Penalty", "DEFAULT_EXCLUDE", "functional"]
