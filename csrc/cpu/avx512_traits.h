// The AVX-512 (F, BW, VL, DQ) vector traits of kernel_loops.h, for the translation units compiled
// with those flags (kernels_avx512.cpp, and kernels_avx512_bf16.cpp, which adds AVX512_BF16).
// Anonymous namespace: each including file gets its own internal copy.
#pragma once
#include <immintrin.h>

#include "cpu/kernel_loops.h"

namespace fp::cpu {
namespace {

static inline __mmask16 mask16(int n) { return __mmask16((1u << n) - 1u); }
static inline __mmask8 mask8(int n) { return __mmask8((1u << n) - 1u); }
static inline __mmask32 mask32(int n) { return n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1u); }

// Four sums per value loop (kernel_loops.h) on every AVX-512 type: a 512-bit register is a whole
// cache line of fp32, and with two the loop's add chains were its limit in cache (131072 fp32 on
// one core of the AMD EPYC with AVX512_BF16: 0.69 -> 0.88 of the core's read probe,
// bench/results/ab_avx512_value_incache_1thread.csv).
constexpr int kAvx512ValueSums = 4;

struct Avx512F64 {
  static constexpr int32_t kDtype = FP_FLOAT64;
  static constexpr int kValueSums = kAvx512ValueSums;
  using S = double;
  using C = double;
  using R = __m512d;
  static constexpr int W = 8;
  static R load(const S* p) { return _mm512_loadu_pd(p); }
  static R load_part(const S* p, int n) { return _mm512_maskz_loadu_pd(mask8(n), p); }
  static void store(S* p, R r) { _mm512_storeu_pd(p, r); }
  static void store_part(S* p, R r, int n) { _mm512_mask_storeu_pd(p, mask8(n), r); }
  static R zero() { return _mm512_setzero_pd(); }
  static R set1(C c) { return _mm512_set1_pd(c); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R abs(R a) { return _mm512_abs_pd(a); }
  static R signed_factor(R x, R s) {
    const __mmask8 nonzero = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_NEQ_UQ);
    return _mm512_maskz_mov_pd(nonzero, _mm512_or_pd(_mm512_and_pd(x, _mm512_set1_pd(-0.0)), s));
  }
  static R scaled_sign(R x, R s) {
    const __mmask8 nonzero = _mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_NEQ_UQ);
    const __mmask8 nan = _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q);
    const R signed_s = _mm512_or_pd(_mm512_and_pd(x, _mm512_set1_pd(-0.0)), s);
    return _mm512_mask_mov_pd(_mm512_maskz_mov_pd(nonzero, signed_s), nan, x);
  }
  static double hsum(R a) { return _mm512_reduce_add_pd(a); }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) { return loops::simd_grad_term<Avx512F64, L1, L2>(x, l1, two_l2); }
  using D = Avx512F64;
  static constexpr int DW = 1;
  static R to_d(R x, int) { return x; }
  static R from_d(const R* d) { return d[0]; }
};

// Arithmetic on 16 fp32 lanes, shared by the fp32, fp16 and bf16 storage types.
struct Avx512F32Ops {
  static constexpr int kValueSums = kAvx512ValueSums;
  using C = float;
  using R = __m512;
  static constexpr int W = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R set1(C c) { return _mm512_set1_ps(c); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R abs(R a) { return _mm512_abs_ps(a); }
  // With both terms, a NaN lane's sign term need not be NaN (the product is, and equal NaNs add to
  // the same bits), so the sign term is one masked ternary-logic op: (x & -0.0) | l1 where x != 0.
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) {
    if constexpr (L1 && L2) {
      const __mmask16 nonzero = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      const __m512i sign_term = _mm512_maskz_ternarylogic_epi32(
          nonzero, _mm512_castps_si512(x), _mm512_set1_epi32(int(0x80000000u)), _mm512_castps_si512(l1), 0xEA);
      return _mm512_add_ps(_mm512_castsi512_ps(sign_term), _mm512_mul_ps(two_l2, x));
    } else {
      return loops::simd_grad_term<Avx512F32Ops, L1, L2>(x, l1, two_l2);
    }
  }
  using D = Avx512F64;
  static constexpr int DW = 2;
  static __m512d to_d(R x, int k) {
    return _mm512_cvtps_pd(k == 0 ? _mm512_castps512_ps256(x)
                                  : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
  }
  static R from_d(const __m512d* d) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(d[0])), _mm512_cvtpd_ps(d[1]), 1);
  }
  static R signed_factor(R x, R s) {
    const __mmask16 nonzero = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    return _mm512_maskz_mov_ps(nonzero, _mm512_or_ps(_mm512_and_ps(x, _mm512_set1_ps(-0.0f)), s));
  }
  static R scaled_sign(R x, R s) {
    const __mmask16 nonzero = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const R signed_s = _mm512_or_ps(_mm512_and_ps(x, _mm512_set1_ps(-0.0f)), s);
    return _mm512_mask_mov_ps(_mm512_maskz_mov_ps(nonzero, signed_s), nan, x);
  }
  static double hsum(R a) {
    const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(a));
    const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
  }
};

struct Avx512F32 : Avx512F32Ops {
  static constexpr int32_t kDtype = FP_FLOAT32;
  using S = float;
  static R load(const S* p) { return _mm512_loadu_ps(p); }
  static R load_part(const S* p, int n) { return _mm512_maskz_loadu_ps(mask16(n), p); }
  static void store(S* p, R r) { _mm512_storeu_ps(p, r); }
  static void store_part(S* p, R r, int n) { _mm512_mask_storeu_ps(p, mask16(n), r); }
};

// 16-bit storage: 16 elements per 256-bit load, widened to 16 fp32 lanes.
template <class Derived>
struct Avx512Half : Avx512F32Ops {
  static constexpr int64_t kValuePrefetchBytes = 8192;  // kernel_loops.h: for the float16 value
  using S = uint16_t;
  static R load(const S* p) { return Derived::widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static R load_part(const S* p, int n) { return Derived::widen(_mm256_maskz_loadu_epi16(mask16(n), p)); }
  // |w| for the value loop: the sign bits cleared before the widening, in a 256-bit AND that any
  // vector port takes, rather than after it in a 512-bit one that competes with vcvtph2ps (two
  // uops on ports 0 and 5 on Intel) for the only two ports 512-bit work runs on.
  static __m256i abs_bits(__m256i h) { return _mm256_and_si256(h, _mm256_set1_epi16(0x7fff)); }
  static R load_abs(const S* p) {
    return Derived::widen(abs_bits(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
  }
  static R load_abs_part(const S* p, int n) { return Derived::widen(abs_bits(_mm256_maskz_loadu_epi16(mask16(n), p))); }
  static void store(S* p, R r) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), Derived::narrow(r)); }
  static void store_part(S* p, R r, int n) { _mm256_mask_storeu_epi16(p, mask16(n), Derived::narrow(r)); }
};

struct Avx512F16 : Avx512Half<Avx512F16> {
  static constexpr int32_t kDtype = FP_FLOAT16;
  static R widen(__m256i h) { return _mm512_cvtph_ps(h); }
  static __m256i narrow(R r) { return _mm512_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
};

struct Avx512BF16 : Avx512Half<Avx512BF16> {
  static constexpr int32_t kDtype = FP_BFLOAT16;
  static R widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  static __m256i narrow(R r) {  // round to nearest even; NaN stays a quiet NaN
    const __m512i x = _mm512_castps_si512(r);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    const __mmask16 nan = _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    const __m512i bits = _mm512_mask_or_epi32(rounded, nan, x, _mm512_set1_epi32(0x00400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16));
  }
};


// bf16 storage, 32 elements per 512-bit load, held as two halves of 16 fp32 lanes: the even
// elements (the low half of each 32-bit lane, shifted up) and the odd ones (the high half, masked).
// Two operations widen 32 elements, with no cross-lane shuffle (as the AVX2 kernel does); every
// operation is per lane, so the results are those of Avx512BF16. Narrow is the rounding: in
// software here (SoftwareBF16Narrowing), with vcvtne2ps2bf16 in kernels_avx512_bf16.cpp. The
// value loop loads |w| (load_abs): one AND clears the sign bits of 32 elements in the widening
// (in cache, one core: 51 -> 77 GB/s against the 16-lane loop, the same CSV).
struct SoftwareBF16Narrowing {
  static __m512i upper_halves() { return _mm512_set1_epi32(int(0xffff0000u)); }
  // r rounded to bf16 (to nearest even; a NaN stays a NaN, quieted) in the upper 16 bits of each lane.
  static __m512i rounded_upper(__m512 r) {
    const __m512i x = _mm512_castps_si512(r);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(x, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    const __mmask16 nan = _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(rounded, nan, x, _mm512_set1_epi32(0x00400000));
  }
  // (odd's bf16 << 16) | even's bf16 in each lane: (rounded odd & upper halves) | (rounded even >> 16)
  static __m512i narrow(__m512 even, __m512 odd) {
    return _mm512_ternarylogic_epi32(rounded_upper(odd), upper_halves(), _mm512_srli_epi32(rounded_upper(even), 16),
                                     0xEA);
  }
};

struct Avx512BF16Register {
  __m512 even, odd;
};

template <class Narrow>
struct Avx512BF16Pairs : loops::Halves<Avx512F32Ops, Avx512BF16Register> {
  static constexpr int32_t kDtype = FP_BFLOAT16;
  static constexpr int kValueSums = kAvx512ValueSums;
  using S = uint16_t;
  static constexpr int W = 32;
  static constexpr int64_t kValuePrefetchBytes = 6144;  // kernel_loops.h: for the bf16 value

  static R widen(__m512i v) {
    loops::in_register(v);  // one load feeding both halves
    return {_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)),
            _mm512_castsi512_ps(_mm512_and_si512(v, SoftwareBF16Narrowing::upper_halves()))};
  }
  static R widen_abs(__m512i v) {
    loops::in_register(v);
    return {_mm512_castsi512_ps(_mm512_and_si512(_mm512_slli_epi32(v, 16), _mm512_set1_epi32(0x7fffffff))),
            _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(0x7fff0000)))};
  }
  static R load(const S* p) { return widen(_mm512_loadu_si512(p)); }
  static R load_abs(const S* p) { return widen_abs(_mm512_loadu_si512(p)); }
  static R load_abs_part(const S* p, int n) { return widen_abs(_mm512_maskz_loadu_epi16(mask32(n), p)); }
  static R load_part(const S* p, int n) { return widen(_mm512_maskz_loadu_epi16(mask32(n), p)); }
  static void store(S* p, R r) { _mm512_storeu_si512(p, Narrow::narrow(r.even, r.odd)); }
  static void store_part(S* p, R r, int n) { _mm512_mask_storeu_epi16(p, mask32(n), Narrow::narrow(r.even, r.odd)); }
};

using Avx512BF16Software = Avx512BF16Pairs<SoftwareBF16Narrowing>;
}  // namespace
}  // namespace fp::cpu
