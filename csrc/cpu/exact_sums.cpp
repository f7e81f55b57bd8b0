// The slow, exact-range path of the sums: blocks whose fast sums overflowed or underflowed, and
// the arithmetic on sums carried at a power-of-two scale. Baseline flags: one definition for every ISA.
#include <cmath>

#include "common/penalty_math.h"
#include "cpu/kernels.h"

namespace fp::cpu {
namespace {

double load_as_double(const void* w, int64_t i, int32_t dtype) {
  switch (dtype) {
    case FP_FLOAT64:
      return static_cast<const double*>(w)[i];
    case FP_FLOAT32:
      return static_cast<const float*>(w)[i];
    case FP_FLOAT16:
      return fp_f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default:
      return fp_bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  }
}

// x * f * 2^k computed through the mantissas, so no intermediate overflows or flushes.
double scaled_product(double f, double x, int k) {
  if (f == 0.0 || x == 0.0) return f * x;
  int ef, ex;
  const double mf = std::frexp(f, &ef), mx = std::frexp(x, &ex);
  return std::ldexp(mf * mx, ef + ex + k);
}

}  // namespace

ChunkSums exact_block_sums(const void* w, int64_t n, int32_t dtype) {
  ChunkSums s;
  double max_abs = 0.0;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const double x = std::fabs(load_as_double(w, i, dtype));
    finite = finite && std::isfinite(x);
    s.abs += x;
    s.sq += x * x;
    max_abs = x > max_abs ? x : max_abs;
  }
  // Squares of float32/fp16/bf16 values are always in double's range. float64 needs a scale where
  // a sum overflows or the squares underflow; an inf or NaN weight makes the plain sums right.
  const bool plain_ok = std::isfinite(s.abs) && std::isfinite(s.sq) && !(s.sq < 0x1p-900 && s.abs != 0.0);
  if (dtype != FP_FLOAT64 || !finite || max_abs == 0.0 || plain_ok) return s;
  std::frexp(max_abs, &s.scale);  // max_abs * 2^-scale is in [0.5, 1)
  s.abs = s.sq = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = std::ldexp(std::fabs(load_as_double(w, i, dtype)), -s.scale);
    s.abs += x;
    s.sq += x * x;
  }
  return s;
}

void add_rescaled_sums(ChunkSums& total, const ChunkSums& s) {
  if (s.abs == 0.0 && s.sq == 0.0) return;
  if (total.abs == 0.0 && total.sq == 0.0) {
    total = s;
    return;
  }
  const int to = total.scale > s.scale ? total.scale : s.scale;
  total.abs = std::ldexp(total.abs, total.scale - to) + std::ldexp(s.abs, s.scale - to);
  total.sq = std::ldexp(total.sq, 2 * (total.scale - to)) + std::ldexp(s.sq, 2 * (s.scale - to));
  total.scale = to;
}

double combine_sums(const ChunkSums& s, double l1, double l2) {
  double v = 0.0;
  if (s.scale == 0) return fp_combine(s.abs, s.sq, l1, l2);
  if (l1 != 0.0) v += scaled_product(l1, s.abs, s.scale);
  if (l2 != 0.0) v += scaled_product(l2, s.sq, 2 * s.scale);
  return v;
}

}  // namespace fp::cpu
