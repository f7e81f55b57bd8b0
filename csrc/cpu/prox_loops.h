// The chunk loop of the proximal step (common/penalty_math.h: fp_prox_element), written once over
// the vector traits of kernel_loops.h and three operations the step adds per register type
// (prox_step, nan_bits, zero_bits): generic ones below for the scalar kernels' lane arrays, and
// overloads for the SIMD registers in cpu/prox_lanes_avx2.h and cpu/prox_lanes_avx512.h, which
// include this header after declaring them.
// The sums of the new weights come from value_chunk itself, run on the chunk once the step has
// written it (from cache), so a prox value equals fp_value_many of the result bit for bit.
#pragma once
#include <stdint.h>
#include <string.h>

#include <type_traits>
#include <utility>

#include "common/penalty_math.h"
#include "cpu/kernel_loops.h"

namespace fp::cpu::loops {

// The operations the step adds, for the scalar kernels' lane arrays (`R::v`); the SIMD files
// declare the same three functions for their registers before including this header (plain
// overloads: a dependent call finds them by ordinary lookup at this header's definitions).
template <bool DIVIDE, class R>
static auto prox_step(R x, const R& t, const R& d) -> decltype(x.v[0], R()) {
  for (size_t k = 0; k < sizeof(x.v) / sizeof(x.v[0]); ++k)
    x.v[k] = fp_prox_element<std::remove_reference_t<decltype(x.v[0])>, DIVIDE>(x.v[k], t.v[k], d.v[k]);
  return x;
}
template <class R>
static auto nan_bits(const R& x) -> decltype(x.v[0], 0u) {
  unsigned bits = 0;
  for (size_t k = 0; k < sizeof(x.v) / sizeof(x.v[0]); ++k) bits |= unsigned(x.v[k] != x.v[k]) << k;
  return bits;
}
// Lanes with |r| <= below (below >= 0).
template <class R, class C>
static auto zero_bits(const R& r, C below) -> decltype(r.v[0], 0u) {
  unsigned bits = 0;
  for (size_t k = 0; k < sizeof(r.v) / sizeof(r.v[0]); ++k) bits |= unsigned(r.v[k] <= below && r.v[k] >= -below) << k;
  return bits;
}

// Magnitudes (in V's compute type) that round to 0 in V's storage type: fp16 and bf16 round
// |r| <= half their smallest subnormal (2^-24, 2^-133) to 0 (ties to even).
template <class V>
constexpr typename V::C kRoundsToZero = V::kDtype == FP_FLOAT16    ? typename V::C(0x1p-25)
                                        : V::kDtype == FP_BFLOAT16 ? typename V::C(0x1p-134)
                                                                   : typename V::C(0);

// Tc and Dc as registers of the compute type: V's, or double lanes (V::D) when WIDE.
template <class V, bool WIDE>
struct ProxFactors {
  using P = std::conditional_t<WIDE, typename V::D, V>;
  using C = typename P::C;
  typename P::R t, d;
  ProxFactors(double td, double dd) : t(P::set1(C(td))), d(P::set1(C(dd))) {}
};

template <class V, bool WIDE, bool DIVIDE>
static typename V::R prox_register(typename V::R x, const ProxFactors<V, WIDE>& f) {
  if constexpr (WIDE) {
    using D = typename V::D;
    typename D::R out[V::DW];
    for (int k = 0; k < V::DW; ++k) out[k] = prox_step<DIVIDE>(V::to_d(x, k), f.t, f.d);
    return V::from_d(out);
  } else {
    return prox_step<DIVIDE>(x, f.t, f.d);
  }
}

// Stores the first m lanes of r at p except the NaN lanes of the input, whose bits stay as they
// were (a narrowing store would quiet a signalling fp16/bf16 NaN).
template <class V>
static void store_keeping_nans(typename V::S* p, typename V::R r, int m, unsigned nan) {
  typename V::S kept[V::W];
  memcpy(kept, p, size_t(m) * sizeof(typename V::S));
  if (m == V::W) V::store(p, r);
  else V::store_part(p, r, m);
  for (int k = 0; k < m; ++k)
    if ((nan >> k) & 1u) p[k] = kept[k];
}

// w = prox(w) over n elements; returns how many of the results are 0.
template <class V, bool WIDE, bool DIVIDE>
static int64_t prox_pass(void* wp, int64_t n, double t, double d) {
  using R = typename V::R;
  constexpr int W = V::W;
  auto* w = static_cast<typename V::S*>(wp);
  const ProxFactors<V, WIDE> f(t, d);
  const typename V::C below = kRoundsToZero<V>;
  int64_t zeros = 0;
  auto one = [&](int64_t i, int m) {
    R x = m == W ? V::load(w + i) : V::load_part(w + i, m);
    in_register(x);
    const R r = prox_register<V, WIDE, DIVIDE>(x, f);
    const unsigned valid = m == W ? ~0u >> (32 - W) : (1u << m) - 1u;
    zeros += __builtin_popcount(zero_bits(r, below) & valid);
    const unsigned nan = nan_bits(x) & valid;
    if (__builtin_expect(nan != 0, 0)) store_keeping_nans<V>(w + i, r, m, nan);
    else if (m == W) V::store(w + i, r);
    else V::store_part(w + i, r, m);
  };
  int64_t i = 0;
  for (; i + W <= n; i += W) one(i, W);
  if (i < n) one(i, int(n - i));
  return zeros;
}

template <class V>
static int64_t count_zeros(const void* wp, int64_t n) {
  constexpr int W = V::W;
  const auto* w = static_cast<const typename V::S*>(wp);
  int64_t zeros = 0;
  int64_t i = 0;
  for (; i + W <= n; i += W) zeros += __builtin_popcount(zero_bits(V::load(w + i), typename V::C(0)));
  if (i < n) {
    const int m = int(n - i);
    zeros += __builtin_popcount(zero_bits(V::load_part(w + i, m), typename V::C(0)) & ((1u << m) - 1u));
  }
  return zeros;
}

template <class V, bool WIDE>
static int64_t prox_in_precision(void* w, int64_t n, double t, double d) {
  using C = typename ProxFactors<V, WIDE>::C;
  if (C(d) == C(1)) return prox_pass<V, WIDE, false>(w, n, t, d);
  return prox_pass<V, WIDE, true>(w, n, t, d);
}

// VALUE: the traits of the table's value kernel for this dtype, whose sums the prox must equal.
template <class V, class VALUE = V>
static ChunkSums prox_chunk(void* w, int64_t n, double lr, double l1, double l2, int64_t* zeros) {
  if (fp_prox_writes(lr, l1, l2)) {
    const double t = fp_prox_shrink(lr, l1), s = fp_prox_decay(lr, l2), d = 1.0 + s;
    if (V::kDtype != FP_FLOAT64 && !fp_prox_fits_float(t, s)) *zeros += prox_in_precision<V, true>(w, n, t, d);
    else *zeros += prox_in_precision<V, false>(w, n, t, d);
  } else {
    *zeros += count_zeros<V>(w, n);
  }
  return value_chunk<VALUE>(w, n);
}

// The table with its prox kernels (each ISA file's table goes through this once). BF16_VALUE: the
// traits the table's bf16 value kernel uses, where they differ from BF16.
template <class F32, class F64, class F16, class BF16, class BF16_VALUE = BF16>
static KernelTable with_prox(KernelTable t) {
  t.prox[FP_FLOAT32] = prox_chunk<F32>;
  t.prox[FP_FLOAT64] = prox_chunk<F64>;
  t.prox[FP_FLOAT16] = prox_chunk<F16>;
  t.prox[FP_BFLOAT16] = prox_chunk<BF16, BF16_VALUE>;
  return t;
}

}  // namespace fp::cpu::loops
