// The proximal step's register operations (cpu/prox_loops.h) for AVX2: fp_prox_element's operation
// sequence (common/penalty_math.h) on 8 float or 4 double lanes; vdivps/vdivpd round correctly, as
// `/` does. Declared before prox_loops.h is included, so its loops find them.
#pragma once
#include <immintrin.h>

namespace fp::cpu::loops {

template <bool DIVIDE>
static inline __m256 prox_step(__m256 x, __m256 t, __m256 d) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 a = _mm256_sub_ps(_mm256_andnot_ps(sign, x), t);
  const __m256 keep = _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_NLE_UQ);  // a > 0, or NaN
  __m256 r = _mm256_or_ps(a, _mm256_and_ps(x, sign));                          // copysign(a, x)
  if (DIVIDE) r = _mm256_div_ps(r, d);
  return _mm256_and_ps(r, keep);
}
static inline unsigned nan_bits(__m256 x) { return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q))); }
static inline unsigned zero_bits(__m256 r, float below) {
  const __m256 magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), r);
  return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(magnitude, _mm256_set1_ps(below), _CMP_LE_OQ)));
}

template <bool DIVIDE>
static inline __m256d prox_step(__m256d x, __m256d t, __m256d d) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  const __m256d a = _mm256_sub_pd(_mm256_andnot_pd(sign, x), t);
  const __m256d keep = _mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_NLE_UQ);
  __m256d r = _mm256_or_pd(a, _mm256_and_pd(x, sign));
  if (DIVIDE) r = _mm256_div_pd(r, d);
  return _mm256_and_pd(r, keep);
}
static inline unsigned nan_bits(__m256d x) { return unsigned(_mm256_movemask_pd(_mm256_cmp_pd(x, x, _CMP_UNORD_Q))); }
static inline unsigned zero_bits(__m256d r, double below) {
  const __m256d magnitude = _mm256_andnot_pd(_mm256_set1_pd(-0.0), r);
  return unsigned(_mm256_movemask_pd(_mm256_cmp_pd(magnitude, _mm256_set1_pd(below), _CMP_LE_OQ)));
}

}  // namespace fp::cpu::loops

#include "cpu/prox_loops.h"
