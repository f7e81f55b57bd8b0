// AVX2 + FMA + F16C kernels. Compiled with -mavx2 -mfma -mf16c; only reached after CPUID/XCR0
// say the CPU and OS support them. Tails use masked loads/stores (32/64-bit) or a zero-padded
// stack copy (16-bit types, which AVX2 cannot mask).
#include <immintrin.h>
#include <string.h>

#include "cpu/kernel_loops.h"
#include "cpu/prox_lanes_avx2.h"

namespace fp::cpu {
namespace {

static inline __m256i lane_mask32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline __m256i lane_mask64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}

struct Avx2F64 {
  static constexpr int32_t kDtype = FP_FLOAT64;
  using S = double;
  using C = double;
  using R = __m256d;
  static constexpr int W = 4;
  static R load(const S* p) { return _mm256_loadu_pd(p); }
  static R load_part(const S* p, int n) { return _mm256_maskload_pd(p, lane_mask64(n)); }
  static void store(S* p, R r) { _mm256_storeu_pd(p, r); }
  static void store_part(S* p, R r, int n) { _mm256_maskstore_pd(p, lane_mask64(n), r); }
  static R zero() { return _mm256_setzero_pd(); }
  static R set1(C c) { return _mm256_set1_pd(c); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R abs(R a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static R signed_factor(R x, R s) {
    const R nonzero = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_NEQ_UQ);
    return _mm256_and_pd(_mm256_or_pd(_mm256_and_pd(x, _mm256_set1_pd(-0.0)), s), nonzero);
  }
  static R scaled_sign(R x, R s) {
    const R nonzero = _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_NEQ_UQ);
    const R signed_s = _mm256_or_pd(_mm256_and_pd(x, _mm256_set1_pd(-0.0)), s);
    const R nan = _mm256_cmp_pd(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_pd(_mm256_and_pd(signed_s, nonzero), x, nan);
  }
  static double hsum(R a) {
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) { return loops::simd_grad_term<Avx2F64, L1, L2>(x, l1, two_l2); }
  using D = Avx2F64;
  static constexpr int DW = 1;
  static R to_d(R x, int) { return x; }
  static R from_d(const R* d) { return d[0]; }
};

// Arithmetic on 8 fp32 lanes, shared by the fp32, fp16 and bf16 storage types.
struct Avx2F32Ops {
  using C = float;
  using R = __m256;
  static constexpr int W = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R set1(C c) { return _mm256_set1_ps(c); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) { return loops::simd_grad_term<Avx2F32Ops, L1, L2>(x, l1, two_l2); }
  using D = Avx2F64;
  static constexpr int DW = 2;
  static __m256d to_d(R x, int k) {
    return _mm256_cvtps_pd(k == 0 ? _mm256_castps256_ps128(x) : _mm256_extractf128_ps(x, 1));
  }
  static R from_d(const __m256d* d) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(d[0])), _mm256_cvtpd_ps(d[1]), 1);
  }
  static R signed_factor(R x, R s) {
    const R nonzero = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    return _mm256_and_ps(_mm256_or_ps(_mm256_and_ps(x, _mm256_set1_ps(-0.0f)), s), nonzero);
  }
  static R scaled_sign(R x, R s) {
    const R nonzero = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ);
    const R signed_s = _mm256_or_ps(_mm256_and_ps(x, _mm256_set1_ps(-0.0f)), s);
    const R nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(_mm256_and_ps(signed_s, nonzero), x, nan);
  }
  static double hsum(R a) {
    __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  }
};

struct Avx2F32 : Avx2F32Ops {
  static constexpr int32_t kDtype = FP_FLOAT32;
  using S = float;
  static R load(const S* p) { return _mm256_loadu_ps(p); }
  static R load_part(const S* p, int n) { return _mm256_maskload_ps(p, lane_mask32(n)); }
  static void store(S* p, R r) { _mm256_storeu_ps(p, r); }
  static void store_part(S* p, R r, int n) { _mm256_maskstore_ps(p, lane_mask32(n), r); }
};

// 16-bit storage: 8 elements per 128-bit load, widened to 8 fp32 lanes.
template <class Derived>
struct Avx2Half : Avx2F32Ops {
  using S = uint16_t;
  static R load(const S* p) { return Derived::widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static void store(S* p, R r) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), Derived::narrow(r)); }
  static R load_part(const S* p, int n) {
    alignas(16) S buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf, p, size_t(n) * sizeof(S));
    return load(buf);
  }
  static void store_part(S* p, R r, int n) {
    alignas(16) S buf[8];
    store(buf, r);
    memcpy(p, buf, size_t(n) * sizeof(S));
  }
};

struct Avx2F16 : Avx2Half<Avx2F16> {
  static constexpr int32_t kDtype = FP_FLOAT16;
  static R widen(__m128i h) { return _mm256_cvtph_ps(h); }
  static __m128i narrow(R r) { return _mm256_cvtps_ph(r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
};

// bf16: 16 elements per 256-bit load, split by parity into two fp32 registers without a shuffle:
// the even elements shifted into the upper halves of the 32-bit lanes, the odd ones masked there.
// Narrowing interleaves them back the same way. Each element is computed alone, so the bits are
// those of any other lane order; only the lane sums see the split.
struct Avx2BF16Register {
  __m256 even, odd;
};

struct Avx2BF16 : loops::Halves<Avx2F32Ops, Avx2BF16Register> {
  static constexpr int32_t kDtype = FP_BFLOAT16;
  using S = uint16_t;
  static constexpr int W = 16;

  static __m256i upper_halves() { return _mm256_set1_epi32(int(0xffff0000u)); }
  static R widen(__m256i v) {
    loops::in_register(v);  // one load feeding both halves
    return {_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), _mm256_castsi256_ps(_mm256_and_si256(v, upper_halves()))};
  }
  // r rounded to bf16 (to nearest even) in the upper 16 bits of each lane. A NaN lane must already
  // be quiet with its low 16 bits zero, and then it keeps its bits: the rounding carries nothing
  // into them. Every NaN stored here is: x86 arithmetic returns its NaN operand quieted (a new
  // NaN is 0xffc00000), every operand is a widened bf16 (low 16 bits zero) or a finite factor, and
  // the double path's narrowing to float keeps a NaN's leading payload bits; grad_term quiets the
  // one NaN that is passed through rather than computed. (Without the NaN blends the bf16 accumulate ran
  // at 0.88 of the g += w probe on one thread of an AMD EPYC Zen 3, against 0.82 with them, timed
  // in one process by bench/ab_libraries.py: bench/results/ab_avx2_bf16_store_1thread.csv.)
  static __m256i rounded_upper(__m256 r) {
    const __m256i x = _mm256_castps_si256(r);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(x, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  }
  static __m256i narrow(R r) {  // the even elements into the low 16 bits of each lane, the odd ones above
    return _mm256_blend_epi16(_mm256_srli_epi32(rounded_upper(r.even), 16), rounded_upper(r.odd), 0xAA);
  }
  // The L1-only term passes a NaN w through as it is, signalling or not: times 1 quiets it (and is
  // exact on the other results, +-l1 and +0). The 1 is hidden from GCC, which would fold the
  // product away (it assumes no signalling NaNs).
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) {
    const R t = Halves::template grad_term<L1, L2>(x, l1, two_l2);
    if constexpr (L1 && !L2) {
      __m256 one = _mm256_set1_ps(1.0f);
      loops::in_register(one);
      return {_mm256_mul_ps(t.even, one), _mm256_mul_ps(t.odd, one)};
    }
    return t;
  }
  static R load(const S* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static void store(S* p, R r) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), narrow(r)); }
  static R load_part(const S* p, int n) {
    alignas(32) S buf[W] = {};
    memcpy(buf, p, size_t(n) * sizeof(S));
    return load(buf);
  }
  static void store_part(S* p, R r, int n) {
    alignas(32) S buf[W];
    store(buf, r);
    memcpy(p, buf, size_t(n) * sizeof(S));
  }
};

// The proximal step's register operations (cpu/prox_loops.h) for the even/odd halves of a bf16
// register: each half is 8 float lanes; the lane masks are returned in element order (element 2k
// is the even half's lane k, element 2k+1 the odd half's), as the NaN-keeping store reads them.
inline unsigned to_even_bits(unsigned half) {  // bit k -> bit 2k, for 8 bits
  half = (half | (half << 4)) & 0x0F0Fu;
  half = (half | (half << 2)) & 0x3333u;
  return (half | (half << 1)) & 0x5555u;
}
template <bool DIVIDE>
inline Avx2BF16::R prox_step(Avx2BF16::R x, const Avx2BF16::R& t, const Avx2BF16::R& d) {
  return {loops::prox_step<DIVIDE>(x.even, t.even, d.even), loops::prox_step<DIVIDE>(x.odd, t.odd, d.odd)};
}
inline unsigned nan_bits(const Avx2BF16::R& x) {
  return to_even_bits(loops::nan_bits(x.even)) | (to_even_bits(loops::nan_bits(x.odd)) << 1);
}
inline unsigned zero_bits(const Avx2BF16::R& r, float below) {
  return to_even_bits(loops::zero_bits(r.even, below)) | (to_even_bits(loops::zero_bits(r.odd, below)) << 1);
}

}  // namespace

const KernelTable& kernel_table_avx2() {
  static const KernelTable table = loops::with_prox<Avx2F32, Avx2F64, Avx2F16, Avx2BF16>(
      loops::make_table<Avx2F32, Avx2F64, Avx2F16, Avx2BF16>("avx2"));
  return table;
}

}  // namespace fp::cpu
