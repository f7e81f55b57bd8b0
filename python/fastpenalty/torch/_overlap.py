"""No tensor written in place may share memory with any other tensor of the same call: the
kernels read w and write g in parallel chunks, so an overlap would give a wrong answer."""
from .._dtypes import ITEMSIZE
from ._layout import DTYPE_CODES, byte_span, first_overlap

# The last (pointers, sizes, dtype codes) of an all-contiguous call proven free of overlap: a
# training loop passes the same parameters and gradients every step, and then sorts the spans
# only once. For contiguous tensors these lists fix every span, so a match is a proof.
_proven = None


def _raise(hit, single: bool):
    kind, i, _, j = hit
    if single:
        raise ValueError("w and g share memory; g is written in place and must not overlap w")
    raise ValueError(f"{('ws', 'gs')[kind]}[{i}] and gs[{j}] share memory; a tensor written in "
                     "place must not overlap any other tensor of the call")


def require_disjoint_flat(pairs) -> None:
    """For contiguous pairs given as flat lists (w_ptrs, g_ptrs, sizes, codes)."""
    global _proven
    key = (pairs.w_ptrs, pairs.g_ptrs, pairs.sizes, pairs.codes)
    if key == _proven:
        return
    ends = [n * ITEMSIZE[c] for n, c in zip(pairs.sizes, pairs.codes)]
    hit = first_overlap([(p, p + e) for p, e in zip(pairs.w_ptrs, ends)],
                        [(p, p + e) for p, e in zip(pairs.g_ptrs, ends)])
    if hit is not None:
        _raise(hit, single=False)
    _proven = key


def require_disjoint(ws, gs, single: bool) -> None:
    """For tensors of any layout."""
    global _proven
    key = None
    if all(t.is_contiguous() for t in ws) and all(t.is_contiguous() for t in gs):
        key = ([t.data_ptr() for t in ws], [t.data_ptr() for t in gs], [t.numel() for t in ws],
               [DTYPE_CODES[t.dtype] for t in ws])
        if key == _proven:
            return
    hit = first_overlap([byte_span(t) for t in ws], [byte_span(t) for t in gs])
    if hit is not None:
        _raise(hit, single)
    if key is not None:
        _proven = key
