"""Factor cases shared by the core value/grad/accumulate tests (fixture `factors` in conftest), and
`contract`: the per-element rounding contract of csrc/common/penalty_math.h emulated in NumPy."""
import numpy as np

FACTORS = {
    "l1_only": (0.013, 0.0),
    "l2_only": (0.0, 0.021),
    "both": (0.013, 0.021),
    "large": (3.5, 1.25),
}


def fits_float(f):
    return f == 0.0 or 2.0**-126 <= f <= 2.0**100


def contract(w, l1, l2, g=None):
    """grad(w), or g + grad(w), as penalty_math.h defines it, emulated op by op in NumPy."""
    dtype = w.dtype
    wide = dtype == np.float64 or not (fits_float(l1) and fits_float(2.0 * l2))
    k = np.float64 if wide else np.float32
    x = w.astype(k)
    sign = np.where(x > 0, k(1), np.where(x < 0, k(-1), np.where(np.isnan(x), x, k(0))))
    l1k, two_l2k = k(l1), k(2.0 * l2)
    if l1 and l2:
        t = l1k * sign + two_l2k * x
    elif l1:
        t = l1k * sign
    else:
        t = k(0) + two_l2k * x
    u = t if g is None else g.astype(k) + t
    if k == np.float64 and dtype != np.float64:
        u = u.astype(np.float32)
    return u.astype(dtype)


def prox_contract(w, lr, l1, l2):
    """prox(w) as penalty_math.h defines it (fp_prox_element and its caller), emulated op by op in
    NumPy: the new weights, in w's dtype, with NaN elements' bits kept. w is not modified."""
    dtype = w.dtype
    if lr == 0.0 or (l1 == 0.0 and l2 == 0.0):
        return w.copy()
    t, s = lr * l1, 2.0 * lr * l2
    wide = dtype == np.float64 or not (fits_float(t) and fits_float(s))
    k = np.float64 if wide else np.float32
    tc, dc = k(t), k(1.0 + s)
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        x = w.astype(k)
        a = np.abs(x) - tc
        r = np.where(a > 0, np.copysign(a, x) / dc, k(0))
        if k == np.float64 and dtype != np.float64:
            r = r.astype(np.float32)
        out = r.astype(dtype)
    nan = np.isnan(x)
    out.view(_uint_of(dtype))[nan] = w.view(_uint_of(dtype))[nan]
    return out


def _uint_of(dtype):
    return {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[np.dtype(dtype).itemsize]
