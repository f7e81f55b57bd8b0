// The per-element math of the contract, shared by the CPU kernels and the CUDA kernels:
//   value(w)  = l1 * sum |w_i| + l2 * sum w_i^2
//   grad(w)_i = l1 * sign(w_i) + 2 * l2 * w_i      sign(0) = 0, sign(NaN) = NaN
// A factor equal to 0 switches its term off entirely (Keras skips a zero factor), so an inf in w
// never turns into 0 * inf = NaN through a disabled term.
//
// Rounding, exactly (every backend must give these bits; build with FP contraction off: no FMA):
//   factors   l1 and two_l2 = 2.0 * l2 are doubles (2.0 * l2 is exact; it overflows only for
//             l2 > DBL_MAX / 2, as in the float64 oracle).
//   grad      w is widened to double (exact for every dtype), then, in double, each op rounded:
//               l1 only:   t = l1 * sign(w)                 (one rounding; sign(+-0) = +0)
//               l2 only:   t = 0.0 + two_l2 * w             (one rounding; the + 0.0 makes -0 into +0)
//               both:      t = l1 * sign(w) + two_l2 * w    (mul, mul, add: three roundings)
//             grad_i = t rounded to nearest even to float32, then (fp16/bf16) to the storage type
//             (float64: t itself).
//   g += grad g is widened to double, u = g + t in double (one rounding), then rounded like grad.
// So factors never overflow or flush in float32 (l2 = 2e38 or 1e-46 are applied exactly), and
// float32/float64 results equal the float64 oracle's bit for bit; fp16/bf16 round twice (double
// -> float32 -> storage), which can differ from a direct rounding by one unit in a halfway case.
// The sums (|w|, w^2) use the compute type (float32 for fp32/fp16/bf16) within short blocks; see
// the kernels for how overflow is avoided.
#pragma once
#include "common/dtype.h"

// sign(x) scaled by s, with sign(+-0) = +0 and NaN passed through (like numpy.sign).
template <class T>
FP_FN T fp_scaled_sign(T x, T s) {
  return x > T(0) ? s : (x < T(0) ? -s : (x == x ? T(0) : x));
}

// The gradient term for one element (T = double: see the rounding contract above), for the factor
// switches known at compile time; two_l2 = 2.0 * l2.
template <bool HAS_L1, bool HAS_L2, class T>
FP_FN T fp_grad_term(T w, T l1, T two_l2) {
  T t = T(0);
  if (HAS_L1) t = fp_scaled_sign(w, l1);
  if (HAS_L2) t = t + two_l2 * w;
  return t;
}

// Combines the two sums of one tensor into its penalty value, skipping zero factors.
template <class T>
FP_FN T fp_combine(T sum_abs, T sum_sq, T l1, T l2) {
  T v = T(0);
  if (l1 != T(0)) v += l1 * sum_abs;
  if (l2 != T(0)) v += l2 * sum_sq;
  return v;
}

// Factors must be finite and >= 0.
FP_FN bool fp_factor_ok(double f) { return f >= 0.0 && f <= 1.7976931348623157e308; }
