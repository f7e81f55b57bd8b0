"""Memory layout of tensors: which ones the fused kernels can read or write in place.

The kernels walk a flat run of `numel` elements from `data_ptr()`. A tensor qualifies when its
elements fill one gap-free block with no element stored twice ("dense"), in any dimension order:
contiguous, transposed and channels-last tensors all do. An elementwise pass over w and g is
only correct when both are dense with the same strides, so that the k-th element in memory of
one is the k-th element in memory of the other. Everything here reads metadata only, so it also
works on fake tensors.
"""
import torch

from .._dtypes import CODES

DTYPE_CODES = {getattr(torch, name): code for name, code in CODES.items()}  # torch.float32 -> 0, ...


def is_dense(t: torch.Tensor) -> bool:
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def readable(t: torch.Tensor) -> torch.Tensor:
    """t, or a copy of it, whose memory holds its logical values densely. A negative-bit view
    (torch._neg_view, z.conj().imag) stores the negated values, so it is resolved first."""
    if t.is_neg():
        t = t.resolve_neg()
    return t if is_dense(t) else t.contiguous()


def writable_in_place(w: torch.Tensor, g: torch.Tensor) -> bool:
    """Whether g += grad(w) can run on the raw memory of both: dense, laid out alike, and
    neither storing negated values."""
    return (is_dense(w) and is_dense(g) and same_layout(w, g)
            and not w.is_neg() and not g.is_neg())


def staged_target(g: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor holding g's values, written in place of g and copied back (copy_
    honours g's negative bit)."""
    return g.resolve_neg().contiguous() if g.is_neg() else g.contiguous()


def same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Element k in memory of a is element k in memory of b (shapes already equal)."""
    if a.is_contiguous() and b.is_contiguous():
        return True
    return all(sa == sb for size, sa, sb in zip(a.shape, a.stride(), b.stride()) if size != 1)


def may_overlap_itself(t: torch.Tensor) -> bool:
    """True unless the strides prove that no two elements share memory (expanded tensors,
    some as_strided views). A conservative answer: True does not prove an overlap."""
    if is_dense(t):
        return False
    reach = 0  # furthest element offset reachable through the smaller strides
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride <= reach:
            return True
        reach += stride * (size - 1)
    return False


def byte_span(t: torch.Tensor) -> tuple:
    """(start, end) in bytes of the memory that t's elements live in; empty when numel == 0."""
    start = t.data_ptr()
    if t.is_contiguous():
        return start, start + t.nbytes
    if t.numel() == 0:
        return start, start
    last = sum(st * (sz - 1) for sz, st in zip(t.shape, t.stride()))
    return start, start + (last + 1) * t.element_size()


def first_overlap(read_spans, written_spans):
    """The first (kind, i, kind, j) where a written span shares memory with any other span (read
    or written; kind 0 = read, 1 = written), or None. One sort over all spans: O(n log n)."""
    spans = [(a, b, 0, i) for i, (a, b) in enumerate(read_spans) if b > a]
    spans += [(a, b, 1, i) for i, (a, b) in enumerate(written_spans) if b > a]
    spans.sort()
    far_any = far_written = (0, 0, 0)  # (end, kind, index) of the furthest-reaching span so far
    for start, end, kind, i in spans:
        # the furthest-reaching earlier span starts no later than this one, so if it reaches
        # past this start the two share memory
        if kind == 1 and start < far_any[0]:
            return far_any[1], far_any[2], kind, i
        if kind == 0 and start < far_written[0]:
            return far_written[1], far_written[2], kind, i
        if end > far_any[0]:
            far_any = (end, kind, i)
        if kind == 1 and end > far_written[0]:
            far_written = (end, kind, i)
    return None
