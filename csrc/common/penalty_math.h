// The per-element math of the contract, shared by the CPU kernels and the CUDA kernels:
//   value(w)  = l1 * sum |w_i| + l2 * sum w_i^2
//   grad(w)_i = l1 * sign(w_i) + 2 * l2 * w_i      sign(0) = 0, sign(NaN) = NaN
// A factor equal to 0 switches its term off entirely (Keras skips a zero factor), so an inf in w
// never turns into 0 * inf = NaN through a disabled term.
//
// Rounding, exactly (every backend must give these bits; build with FP contraction off: no FMA):
//   compute type K: double for float64 weights. For float32, fp16 and bf16 weights, float32 when
//             fp_factors_fit_float(l1, l2) (each nonzero l1 and 2 * l2 within [2^-126, 2^100]),
//             else double. So a factor is never applied where it would overflow or flush in
//             float32 (l2 = 2e38 or 1e-46 go the double way), and float32 is used where its result
//             can only overflow or flush when the exact one does.
//   factors   l1 and two_l2 = 2.0 * l2 (in double: exact), each rounded to K (to nearest even).
//   grad      w is widened to K (exact), then, in K, each op rounded to nearest even:
//               l1 only:   t = l1 * sign(w)                 (sign(+-0) = +0: t is +-l1, +0 or NaN)
//               l2 only:   t = 0 + two_l2 * w               (the + 0 makes -0 into +0)
//               both:      t = l1 * sign(w) + two_l2 * w    (mul, then add)
//             grad_i = t rounded to float32 when K is double and w is not float64, then (fp16,
//             bf16) rounded to the storage type.
//   g += grad g is widened to K, u = g + t in K (one rounding), then rounded like grad.
//   NaN       a NaN w gives a NaN gradient (its payload, quieted); where g and t are both NaN,
//             which of the two u holds is unspecified (compilers may swap the operands of +).
// With K = double the float32/float64 results equal the float64 oracle's bit for bit; fp16/bf16
// round twice (K -> float32 -> storage), one unit off a direct rounding in a halfway case.
// The sums (|w|, w^2) use float32 (float64 for float64 weights) within short blocks; blocks whose
// sums overflow or underflow are redone in double (csrc/cpu/exact_sums.cpp).
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

// Whether a factor (l1, or 2 * l2) can be applied in float32 (see the rounding contract above).
FP_FN bool fp_factor_fits_float(double f) { return f == 0.0 || (f >= 0x1p-126 && f <= 0x1p100); }
FP_FN bool fp_factors_fit_float(double l1, double l2) {
  return fp_factor_fits_float(l1) && fp_factor_fits_float(2.0 * l2);
}

// Factors must be finite and >= 0.
FP_FN bool fp_factor_ok(double f) { return f >= 0.0 && f <= 1.7976931348623157e308; }
