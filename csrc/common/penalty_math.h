// The per-element math of the contract, shared by the CPU kernels and the CUDA kernels:
//   value(w)  = l1 * sum |w_i| + l2 * sum w_i^2
//   grad(w)_i = l1 * sign(w_i) + 2 * l2 * w_i      sign(0) = 0, sign(NaN) = NaN
// A factor equal to 0 switches its term off entirely (Keras skips a zero factor), so an inf in w
// never turns into 0 * inf = NaN through a disabled term.
#pragma once
#include "common/dtype.h"

// sign(x) scaled by s, with sign(+-0) = 0 and NaN passed through (like numpy.sign).
template <class T>
FP_FN T fp_scaled_sign(T x, T s) {
  return x > T(0) ? s : (x < T(0) ? -s : (x == x ? T(0) : x));
}

// The gradient term for one element, for the factor switches known at compile time.
template <bool HAS_L1, bool HAS_L2, class T>
FP_FN T fp_grad_term(T w, T l1, T two_l2) {
  T t = T(0);
  if (HAS_L1) t = fp_scaled_sign(w, l1);
  if (HAS_L2) t = HAS_L1 ? t + two_l2 * w : two_l2 * w;
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
