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
