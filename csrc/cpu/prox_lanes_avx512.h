// The proximal step's register operations (cpu/prox_loops.h) for AVX-512: fp_prox_element's
// operation sequence (common/penalty_math.h) on 16 float or 8 double lanes, dividing only the
// lanes where a > 0 (or NaN). Declared before prox_loops.h is included, so its loops find them.
#pragma once
#include <immintrin.h>

namespace fp::cpu::loops {

template <bool DIVIDE>
static inline __m512 prox_step(__m512 x, __m512 t, __m512 d) {
  const __m512 a = _mm512_sub_ps(_mm512_abs_ps(x), t);
  const __mmask16 keep = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NLE_UQ);  // a > 0, or NaN
  const __m512 r = _mm512_or_ps(a, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));        // copysign(a, x)
  return DIVIDE ? _mm512_maskz_div_ps(keep, r, d) : _mm512_maskz_mov_ps(keep, r);
}
static inline unsigned nan_bits(__m512 x) { return unsigned(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q)); }
static inline unsigned zero_bits(__m512 r, float below) {
  return unsigned(_mm512_cmp_ps_mask(_mm512_abs_ps(r), _mm512_set1_ps(below), _CMP_LE_OQ));
}

template <bool DIVIDE>
static inline __m512d prox_step(__m512d x, __m512d t, __m512d d) {
  const __m512d a = _mm512_sub_pd(_mm512_abs_pd(x), t);
  const __mmask8 keep = _mm512_cmp_pd_mask(a, _mm512_setzero_pd(), _CMP_NLE_UQ);
  const __m512d r = _mm512_or_pd(a, _mm512_and_pd(x, _mm512_set1_pd(-0.0)));
  return DIVIDE ? _mm512_maskz_div_pd(keep, r, d) : _mm512_maskz_mov_pd(keep, r);
}
static inline unsigned nan_bits(__m512d x) { return unsigned(_mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q)); }
static inline unsigned zero_bits(__m512d r, double below) {
  return unsigned(_mm512_cmp_pd_mask(_mm512_abs_pd(r), _mm512_set1_pd(below), _CMP_LE_OQ));
}

}  // namespace fp::cpu::loops

#include "cpu/prox_loops.h"
