// The chunk loops, written once over a vector-traits type V and instantiated by each ISA's file
// with its own traits (so each instantiation is compiled with that ISA's flags). V provides:
//   S (storage element), kDtype (its fp_dtype code), R (register), W (lanes), load/load_part/store/store_part (part: the
//   first n < W lanes, zero-filled on load), zero/set1/add/mul/fma(a,b,c)=a*b+c/abs,
//   scaled_sign(x, s) = s*sign(x) with sign(0)=0 and NaN kept, signed_factor(x, s) the same where x is
//   not NaN (+-s where it is), hsum(R) -> double;
//   C (compute type), grad_term<L1, L2>(x, l1, two_l2) (fp_grad_term of penalty_math.h);
//   D (the same for double lanes, with C = double), DW (D registers per R), to_d(R, k) (the k-th
//   part of R widened to double, exact) and from_d(const D::R*) (rounded to the compute type, to
//   nearest even). The sums stay in the compute type.
// Traits types live in anonymous namespaces, which gives every instantiation internal linkage.
#pragma once
#include <stdint.h>
#include <string.h>

#include <algorithm>
#include <type_traits>

#include "common/penalty_math.h"

#include "cpu/kernels.h"


namespace fp::cpu::loops {

// Registers one V::R spans (V::kRegisters where the traits say, else 1).
template <class V, class = void>
struct registers_of : std::integral_constant<int, 1> {};
template <class V>
struct registers_of<V, std::void_t<decltype(V::kRegisters)>> : std::integral_constant<int, V::kRegisters> {};

// fp32 lane sums are handed over to double every block, so no fp32 lane ever sums more than 32
// terms: the value loop keeps kValueSums accumulators per sum (blocks of 32 * kValueSums vectors),
// the fused loop kFusedSums (blocks of 32 vectors). Error on constant data stays below 3e-7 on
// every ISA. The value loop reads one cache line per step (at least two vectors): measured on the
// AMD EPYC (Zen 3), wider steps kept fewer lines in flight and read slower.
// Traits may set their own count (V::kValueSums).
template <class V, class = void>
struct value_sums_of : std::integral_constant<int, std::max<int>(2, int(64 / (V::W * int64_t(sizeof(typename V::S)))))> {};
template <class V>
struct value_sums_of<V, std::void_t<decltype(V::kValueSums)>> : std::integral_constant<int, V::kValueSums> {};
template <class V>
constexpr int kValueSums = value_sums_of<V>::value;
template <class V>
constexpr int64_t kValueBlock = 32 * kValueSums<V> * V::W;
template <class V>
constexpr int64_t kFusedBlock = 32 * V::W;

template <int64_t kBlock, class Body>
static ChunkSums in_blocks(int64_t n, Body&& body) {
  ChunkSums total;
  for (int64_t i = 0; i < n; i += kBlock) add_sums(total, body(i, n - i < kBlock ? n - i : kBlock));
  return total;
}

// A block's sums from the fast loop, or redone exactly where they overflowed or underflowed (a
// branch per block of hundreds of elements: free in the common case).
template <class V>
static ChunkSums checked_sums(ChunkSums fast, const void* w, int64_t n) {
  return block_sums_ok<typename V::C>(fast) ? fast : exact_block_sums(w, n, V::kDtype);
}

// Software prefetch, kPrefetchBytes ahead of the loads, one per cache line. On the AMD EPYC (Zen 3,
// KVM, 2 cores) this was measured on, the hardware prefetchers alone left the value loop at 0.8-0.9
// of the read probe (16-bit types: about 0.7): the more instructions a cache line costs, the fewer
// lines the out-of-order window keeps in flight. On the AMD EPYC with AVX-512 it took the fp32 and
// fp64 value from 0.93 and 0.95 of torch.sum to 0.98 (bench/results/ab_avx512_value_torchprobe.csv).
// The float16 value loop on AVX-512 prefetches twice as far (V::kValuePrefetchBytes): on one core
// it went from 0.94-0.96 of torch.sum to 0.97-0.98 with 8 KB, the builds timed in both orders; the
// bf16 value gained nothing that way, and both 16-bit fused loops measured slower (0.99-1.00 ->
// 0.96-0.97; bench/results/ab_avx512_16bit_value_prefetch_rotated.csv,
// ab_avx512_16bit_prefetch8k_accumulate_1thread.csv). The bf16 value prefetches 6 KB ahead: in
// the calls where torch.sum had just read at over 70 GB/s it scored 0.88 of that same probe
// against 4 KB's 0.83, and 0.99 either way at up to 58 GB/s
// (bench/results/ab_avx512_bf16_value_prefetch6k_by_bandwidth.txt). That run filed and divided
// each call by one probe, which puts the fast bin's fractions too low for both builds alike; the
// gap between the two builds holds.
// A prefetch past the end of a buffer cannot fault. FP_PREFETCH_BYTES (0: none) sets every
// distance, for measuring.
constexpr int64_t kCacheLine = 64;
#ifdef FP_PREFETCH_BYTES
constexpr bool kPrefetchSet = true;
constexpr int64_t kPrefetchBytes = FP_PREFETCH_BYTES;
#else
constexpr bool kPrefetchSet = false;
constexpr int64_t kPrefetchBytes = 4096;
#endif
template <class V, class = void>
struct value_prefetch_of : std::integral_constant<int64_t, kPrefetchBytes> {};
template <class V>
struct value_prefetch_of<V, std::void_t<decltype(V::kValuePrefetchBytes)>>
    : std::integral_constant<int64_t, kPrefetchSet ? kPrefetchBytes : V::kValuePrefetchBytes> {};
template <class V>
constexpr int64_t kValuePrefetchBytes = value_prefetch_of<V>::value;

// The value loop prefetches into L2 (prefetcht1), the fused loops into L1 (prefetcht0). On the
// Intel Xeon (family 6 model 207, KVM, 2 cores) the AVX-512 value of every dtype went from
// 0.96-1.13 of torch.sum to 1.04-1.17 that way (AVX2 bf16 0.96-0.97 -> 0.99-1.00), while L2
// prefetches in the fused loops took the bf16 accumulate from 0.95 to 0.92 of add_
// (bench/results/ab_xeon_prefetch_l2_by_bandwidth.txt). Not measured on the AMD EPYCs, whose
// figures above predate it.
// FP_PREFETCH_LOCALITY (0-3, __builtin_prefetch's) sets both, for measuring.
#ifdef FP_PREFETCH_LOCALITY
constexpr int kValuePrefetchLocality = FP_PREFETCH_LOCALITY;
constexpr int kFusedPrefetchLocality = FP_PREFETCH_LOCALITY;
#else
constexpr int kValuePrefetchLocality = 2;
constexpr int kFusedPrefetchLocality = 3;
#endif

// One prefetch per cache line of the kBytes at p + kDistance (for writing: WRITE).
template <int64_t kDistance, int64_t kBytes, bool WRITE = false, int LOCALITY = kFusedPrefetchLocality>
static inline void prefetch(const void* p) {
  if constexpr (kDistance > 0)
    for (int64_t b = 0; b < kBytes; b += kCacheLine)
      __builtin_prefetch(static_cast<const char*>(p) + kDistance + b, WRITE ? 1 : 0, LOCALITY);
}

// Keeps a loaded vector in a register: without this GCC folds the load into both the abs and the
// multiply-add, loading every cache line twice (measured: value at 0.80 of the read probe).
template <class R>
static inline void in_register(R& x) {
  if constexpr (!std::is_class_v<R>) asm("" : "+v"(x));
}

// The register operations of a storage type held as two halves of Ops registers (bf16 split by
// parity into its even and odd elements, on AVX2 and AVX-512): every operation applies to both
// halves alike, so each element's bits are those of one Ops lane; only the lane sums see the split.
// The storage type adds kDtype, S, W and its loads and stores. Reg is its register, a struct of
// two Ops registers `even` and `odd` declared in the ISA file, so that the overloads that file
// declares for it (the proximal step's, cpu/prox_loops.h) are found by argument-dependent lookup.
template <class Ops, class Reg>
struct Halves {
  using F = Ops;
  using C = typename Ops::C;
  static constexpr int kRegisters = 2;
  using R = Reg;
  static R zero() { return {F::zero(), F::zero()}; }
  static R set1(C c) { return {F::set1(c), F::set1(c)}; }
  static R add(R a, R b) { return {F::add(a.even, b.even), F::add(a.odd, b.odd)}; }
  static R mul(R a, R b) { return {F::mul(a.even, b.even), F::mul(a.odd, b.odd)}; }
  static R fma(R a, R b, R c) { return {F::fma(a.even, b.even, c.even), F::fma(a.odd, b.odd, c.odd)}; }
  static R abs(R a) { return {F::abs(a.even), F::abs(a.odd)}; }
  static R scaled_sign(R x, R s) { return {F::scaled_sign(x.even, s.even), F::scaled_sign(x.odd, s.odd)}; }
  static R signed_factor(R x, R s) { return {F::signed_factor(x.even, s.even), F::signed_factor(x.odd, s.odd)}; }
  static double hsum(R a) { return F::hsum(F::add(a.even, a.odd)); }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) {
    return {F::template grad_term<L1, L2>(x.even, l1.even, two_l2.even),
            F::template grad_term<L1, L2>(x.odd, l1.odd, two_l2.odd)};
  }
  using D = typename Ops::D;
  static constexpr int DW = 2 * Ops::DW;  // parts [0, Ops::DW): the even half; the others: the odd half
  static typename D::R to_d(R x, int k) { return F::to_d(k < Ops::DW ? x.even : x.odd, k % Ops::DW); }
  static R from_d(const typename D::R* d) { return {F::from_d(d), F::from_d(d + Ops::DW)}; }
};

// |w| loaded: V::load_abs / load_abs_part where the traits have them, else abs of the load.
template <class V, class = void>
struct has_load_abs : std::false_type {};
template <class V>
struct has_load_abs<V, std::void_t<decltype(V::load_abs(nullptr))>> : std::true_type {};
template <class V>
static inline typename V::R load_abs(const typename V::S* p) {
  if constexpr (has_load_abs<V>::value) {
    return V::load_abs(p);
  } else {
    typename V::R x = V::load(p);
    in_register(x);
    return V::abs(x);
  }
}
template <class V>
static inline typename V::R load_abs_part(const typename V::S* p, int n) {
  if constexpr (has_load_abs<V>::value) return V::load_abs_part(p, n);
  else return V::abs(V::load_part(p, n));
}

template <class V>
static ChunkSums value_block(const void* wp, int64_t n) {
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr int A = kValueSums<V>;
  const auto* w = static_cast<const typename V::S*>(wp);
  R a[A], q[A];
  for (int k = 0; k < A; ++k) a[k] = q[k] = V::zero();
  int64_t i = 0;
  for (; i + A * W <= n; i += A * W) {
    prefetch<kValuePrefetchBytes<V>, A * W * int64_t(sizeof(typename V::S)), false, kValuePrefetchLocality>(w + i);
    for (int k = 0; k < A; ++k) {
      const R x = load_abs<V>(w + i + k * W);  // |w| * |w| == w * w exactly
      a[k] = V::add(a[k], x);
      q[k] = V::fma(x, x, q[k]);
    }
  }
  for (int k = 0; i < n; i += W, ++k) {  // fewer than A more whole or partial vectors
    const R x = (n - i >= W) ? load_abs<V>(w + i) : load_abs_part<V>(w + i, int(n - i));
    a[k] = V::add(a[k], x);
    q[k] = V::fma(x, x, q[k]);
  }
  for (int k = 1; k < A; ++k) {
    a[0] = V::add(a[0], a[k]);
    q[0] = V::add(q[0], q[k]);
  }
  return checked_sums<V>({V::hsum(a[0]), V::hsum(q[0])}, wp, n);
}

template <class V>
static ChunkSums value_chunk(const void* wp, int64_t n) {
  const auto* w = static_cast<const typename V::S*>(wp);
  return in_blocks<kValueBlock<V>>(n, [&](int64_t i, int64_t m) { return value_block<V>(w + i, m); });
}

// The gradient term for the SIMD traits: the operation sequence of fp_grad_term
// (common/penalty_math.h), which the scalar traits call lane by lane.
// With both terms, a NaN w needs no blend in the sign term: two_l2 * w is that NaN quieted (x86
// returns a NaN operand's payload), and so is the sum, as with the blended sign (signed_factor).
template <class P, bool L1, bool L2>
static typename P::R simd_grad_term(typename P::R x, typename P::R l1, typename P::R two_l2) {
  if (L1 && L2) return P::add(P::signed_factor(x, l1), P::mul(two_l2, x));
  if (L1) return P::scaled_sign(x, l1);
  return P::add(P::zero(), P::mul(two_l2, x));  // + 0 turns -0 into +0, as the reference does
}

// The factors as registers of the precision the gradient is computed in (penalty_math.h): V's
// compute type, or double lanes (V::D) when WIDE.
template <class V, bool WIDE>
struct Factors {
  using P = std::conditional_t<WIDE, typename V::D, V>;
  using C = typename P::C;
  typename P::R l1, two_l2;
  Factors(double l1d, double l2d) : l1(P::set1(C(l1d))), two_l2(P::set1(C(2.0 * l2d))) {}
};

// grad(w) for one register of w, added to g when ACCUMULATE, rounded to the compute type (the
// store rounds 16-bit types from there). WIDE: computed in double lanes and rounded once.
template <class V, bool L1, bool L2, bool ACCUMULATE, bool WIDE>
static typename V::R fused_term(typename V::R x, typename V::R g, const Factors<V, WIDE>& f) {
  if constexpr (WIDE) {
    using D = typename V::D;
    typename D::R out[V::DW];
    for (int k = 0; k < V::DW; ++k) {
      const typename D::R t = D::template grad_term<L1, L2>(V::to_d(x, k), f.l1, f.two_l2);
      out[k] = ACCUMULATE ? D::add(V::to_d(g, k), t) : t;
    }
    return V::from_d(out);
  } else {
    const typename V::R t = V::template grad_term<L1, L2>(x, f.l1, f.two_l2);
    return ACCUMULATE ? V::add(g, t) : t;
  }
}

// Vectors per step of the fused loop: at least one cache line of w and at least two vectors. The
// sums are kept in two registers each (vector k of a step adds to accumulator k % kFusedSums): two
// dependency chains, and few enough registers that the bf16 narrowing's constants stay in them.
template <class V>
constexpr int kFusedStep = (2 * V::W * int64_t(sizeof(typename V::S)) >= kCacheLine)
                               ? 2
                               : int(kCacheLine / (V::W * int64_t(sizeof(typename V::S))));
template <class V>
constexpr int kFusedSums = registers_of<V>::value >= 2 ? 1 : 2;

// One pass: reads w and g, writes g (+)= grad(w), and sums |w| and w^2 on the way.
template <class V, bool L1, bool L2, bool ACCUMULATE, bool WIDE>
static ChunkSums fused_block(const void* wp, void* gp, int64_t n, const Factors<V, WIDE>& f) {
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr int U = kFusedStep<V>;
  constexpr int64_t kStepBytes = U * W * int64_t(sizeof(typename V::S));
  const auto* w = static_cast<const typename V::S*>(wp);
  auto* g = static_cast<typename V::S*>(gp);
  constexpr int A = kFusedSums<V>;
  R a[A], q[A];
  for (int k = 0; k < A; ++k) a[k] = q[k] = V::zero();
  auto one = [&](int k, int64_t at) {
    R x = V::load(w + at);
    R old = ACCUMULATE ? V::load(g + at) : V::zero();
    V::store(g + at, fused_term<V, L1, L2, ACCUMULATE, WIDE>(x, old, f));
    a[k % A] = V::add(a[k % A], V::abs(x));
    q[k % A] = V::fma(x, x, q[k % A]);
  };
  int64_t i = 0;
  for (; i + U * W <= n; i += U * W) {
    prefetch<kPrefetchBytes, kStepBytes>(w + i);
    if constexpr (ACCUMULATE) prefetch<kPrefetchBytes, kStepBytes, true>(g + i);
    for (int k = 0; k < U; ++k) one(k, i + k * W);
  }
  for (int k = 0; i + W <= n; i += W, ++k) one(k, i);  // fewer than U whole vectors
  if (i < n) {
    const int m = int(n - i);
    R x = V::load_part(w + i, m);
    R old = ACCUMULATE ? V::load_part(g + i, m) : V::zero();
    V::store_part(g + i, fused_term<V, L1, L2, ACCUMULATE, WIDE>(x, old, f), m);
    a[0] = V::add(a[0], V::abs(x));
    q[0] = V::fma(x, x, q[0]);
  }
  for (int k = 1; k < A; ++k) {
    a[0] = V::add(a[0], a[k]);
    q[0] = V::add(q[0], q[k]);
  }
  return checked_sums<V>({V::hsum(a[0]), V::hsum(q[0])}, wp, n);
}

template <class V, bool L1, bool L2, bool ACCUMULATE, bool WIDE>
static ChunkSums fused_chunk(const void* wp, void* gp, int64_t n, double l1, double l2) {
  const auto* w = static_cast<const typename V::S*>(wp);
  auto* g = static_cast<typename V::S*>(gp);
  const Factors<V, WIDE> f(l1, l2);
  return in_blocks<kFusedBlock<V>>(
      n, [&](int64_t i, int64_t m) { return fused_block<V, L1, L2, ACCUMULATE, WIDE>(w + i, g + i, m, f); });
}

template <class V, bool ACCUMULATE, bool WIDE>
static ChunkSums fused_for_factors(const void* w, void* g, int64_t n, double l1, double l2) {
  if (l1 != 0.0 && l2 != 0.0) return fused_chunk<V, true, true, ACCUMULATE, WIDE>(w, g, n, l1, l2);
  if (l1 != 0.0) return fused_chunk<V, true, false, ACCUMULATE, WIDE>(w, g, n, l1, l2);
  return fused_chunk<V, false, true, ACCUMULATE, WIDE>(w, g, n, l1, l2);
}

// At least one factor is nonzero. The precision is penalty_math.h's choice: float64 weights in
// double; others in float32 unless a factor is outside fp_factor_fits_float's range.
template <class V, bool ACCUMULATE>
static ChunkSums fused(const void* w, void* g, int64_t n, double l1, double l2) {
  if constexpr (V::kDtype != FP_FLOAT64) {
    if (!fp_factors_fit_float(l1, l2)) return fused_for_factors<V, ACCUMULATE, true>(w, g, n, l1, l2);
  }
  return fused_for_factors<V, ACCUMULATE, false>(w, g, n, l1, l2);
}

template <class V>
static ChunkSums accumulate_chunk(const void* w, void* g, int64_t n, double l1, double l2) {
  if (l1 == 0.0 && l2 == 0.0) return value_chunk<V>(w, n);
  return fused<V, true>(w, g, n, l1, l2);
}

// out = grad(w). With both factors zero the gradient is exactly zero, whatever w holds.
template <class V>
static void grad_chunk(const void* w, void* out, int64_t n, double l1, double l2) {
  if (l1 == 0.0 && l2 == 0.0) memset(out, 0, size_t(n) * sizeof(typename V::S));
  else fused<V, false>(w, out, n, l1, l2);
}

template <class V>
static void probe_add(const void* wp, void* gp, int64_t n) {
  constexpr int W = V::W;
  const auto* w = static_cast<const typename V::S*>(wp);
  auto* g = static_cast<typename V::S*>(gp);
  int64_t i = 0;
  for (; i + W <= n; i += W) V::store(g + i, V::add(V::load(g + i), V::load(w + i)));
  if (i < n) V::store_part(g + i, V::add(V::load_part(g + i, int(n - i)), V::load_part(w + i, int(n - i))),
                           int(n - i));
}

template <class V>
static double probe_sum(const void* wp, int64_t n) {
  using R = typename V::R;
  constexpr int W = V::W;
  const auto* w = static_cast<const typename V::S*>(wp);
  R a0 = V::zero(), a1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    a0 = V::add(a0, V::load(w + i));
    a1 = V::add(a1, V::load(w + i + W));
  }
  for (; i < n; i += W) a0 = V::add(a0, (n - i >= W) ? V::load(w + i) : V::load_part(w + i, int(n - i)));
  return V::hsum(V::add(a0, a1));
}

template <class F32, class F64, class F16, class BF16>
static KernelTable make_table(const char* name) {
  KernelTable t{};
  t.name = name;
  t.value[FP_FLOAT32] = value_chunk<F32>;
  t.value[FP_FLOAT64] = value_chunk<F64>;
  t.value[FP_FLOAT16] = value_chunk<F16>;
  t.value[FP_BFLOAT16] = value_chunk<BF16>;
  t.accumulate[FP_FLOAT32] = accumulate_chunk<F32>;
  t.accumulate[FP_FLOAT64] = accumulate_chunk<F64>;
  t.accumulate[FP_FLOAT16] = accumulate_chunk<F16>;
  t.accumulate[FP_BFLOAT16] = accumulate_chunk<BF16>;
  t.grad[FP_FLOAT32] = grad_chunk<F32>;
  t.grad[FP_FLOAT64] = grad_chunk<F64>;
  t.grad[FP_FLOAT16] = grad_chunk<F16>;
  t.grad[FP_BFLOAT16] = grad_chunk<BF16>;
  t.probe_add[FP_FLOAT32] = probe_add<F32>;
  t.probe_add[FP_FLOAT64] = probe_add<F64>;
  t.probe_sum[FP_FLOAT32] = probe_sum<F32>;
  t.probe_sum[FP_FLOAT64] = probe_sum<F64>;
  return t;
}

}  // namespace fp::cpu::loops
