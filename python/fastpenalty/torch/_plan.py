"""The last validated list of plain CPU tensors, remembered with the flat lists the core takes.

A training loop hands the same parameters (and, unless gradients are set to None, the same
gradients) to every call. Validating them in full costs about ten attribute reads per tensor;
for the same tensor objects only a few things can change between calls, and those are
re-read: the address (`p.data = ...`, `set_()`), the element count, the dtype and the
contiguity (`t_()`, `as_strided_()`). The tensors are held weakly, so a remembered list never
keeps freed gradients alive.
"""
import operator
import weakref

import torch

_data_ptr = torch.Tensor.data_ptr
_numel = torch.Tensor.numel
_is_contiguous = torch.Tensor.is_contiguous
_dtype = operator.attrgetter("dtype")
_requires_grad = operator.attrgetter("requires_grad")


class Remembered:
    """One remembered list: recall(ts) gives what remember() stored for it while every check
    still holds, else None."""

    def __init__(self):
        self._refs = None

    def remember(self, ts: list, flat) -> None:
        self._refs = [weakref.ref(t) for t in ts]
        self._ptrs = list(map(_data_ptr, ts))
        self._sizes = list(map(_numel, ts))
        self._dtypes = list(map(_dtype, ts))
        self._flat = flat

    def recall(self, ts: list):
        refs = self._refs
        if refs is None or len(refs) != len(ts):
            return None
        if not (all(map(operator.is_, [r() for r in refs], ts))
                and list(map(_data_ptr, ts)) == self._ptrs
                and list(map(_numel, ts)) == self._sizes
                and list(map(_dtype, ts)) == self._dtypes
                and all(map(_is_contiguous, ts))):
            return None
        return self._flat


def any_requires_grad(ts) -> bool:
    return any(map(_requires_grad, ts))
