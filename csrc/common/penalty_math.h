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

// The proximal elastic-net step, in place (fp_prox_many):
//   prox(w) = sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2)
// Rounding, exactly (every ISA and CUDA give these bits; no FMA):
//   factors   lr, l1, l2 each finite and >= 0, and T = lr * l1, S = 2 * lr * l2 (in double) finite
//             (fp_prox_factors_ok). D = 1 + S in double.
//   compute type C: double for float64 weights; for float32, fp16 and bf16 weights float32 when
//             each nonzero of T and S lies in [2^-126, 2^100] (fp_prox_fits_float: the rule of
//             fp_factors_fit_float applied to (T, S)), else double. Tc = (C)T, Dc = (C)D, each
//             rounded once from double, to nearest even.
//   element   x = (C)w (exact). NaN: the element keeps its bits (nothing is stored). Otherwise
//             a = |x| - Tc (one rounding in C); a > 0: r = copysign(a, x) / Dc (a true IEEE
//             division, one rounding in C); else r = +0. r is stored rounded to w's dtype by the
//             dtype.h conversions (to nearest even), through float32 where C is double and w is
//             fp16/bf16 (as grad does); fp16/bf16 may round to 0 there. +-inf stays +-inf, and -0
//             becomes +0 wherever anything is written.
//   no write  lr == 0, or l1 == l2 == 0: nothing is written (w keeps its bits, -0 stays -0).
//   results   the value l1*sum|w'| + l2*sum w'^2 of the new weights w', accumulated exactly as
//             fp_value_many does (the same chunks and blocks, so the same bits), and the count of
//             elements of w' equal to 0 (+0 or -0; a NaN is not 0).
// Dc == 1 (S == 0, or S below half a float32 ulp of 1) makes the division exact, so kernels may
// skip it then.

// One element (T = C): the caller keeps a NaN element's bits; for one this returns a NaN.
// DIVIDE = false only where d == 1 (the division is exact then).
template <class T, bool DIVIDE = true>
FP_FN T fp_prox_element(T x, T t, T d) {
  const T magnitude = x < T(0) ? -x : (x > T(0) ? x : x + T(0));  // |x| (+0 for -0; NaN stays NaN)
  const T a = magnitude - t;
  if (a <= T(0)) return T(0);
  const T r = x < T(0) ? -a : a;  // a > 0 or NaN here: copysign(a, x)
  return DIVIDE ? r / d : r;
}

// T and S of the step, in double (S as (2 * lr) * l2).
FP_FN double fp_prox_shrink(double lr, double l1) { return lr * l1; }
FP_FN double fp_prox_decay(double lr, double l2) { return 2.0 * lr * l2; }

FP_FN bool fp_prox_fits_float(double t, double s) { return fp_factor_fits_float(t) && fp_factor_fits_float(s); }

FP_FN bool fp_prox_factors_ok(double lr, double l1, double l2) {
  return fp_factor_ok(lr) && fp_factor_ok(l1) && fp_factor_ok(l2) && fp_factor_ok(fp_prox_shrink(lr, l1)) &&
         fp_factor_ok(fp_prox_decay(lr, l2));
}

// Whether the step changes anything at all (else w is only read).
FP_FN bool fp_prox_writes(double lr, double l1, double l2) { return lr != 0.0 && (l1 != 0.0 || l2 != 0.0); }
