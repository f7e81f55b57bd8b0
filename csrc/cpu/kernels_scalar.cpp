// Portable kernels: no ISA flags. Eight "lanes" of plain arrays keep the fp32 partial sums short
// (as the SIMD kernels do) and let the compiler use whatever the baseline target offers.
#include <cmath>

#include "common/penalty_math.h"
#include "cpu/kernel_loops.h"
#include "cpu/prox_loops.h"

namespace fp::cpu {
namespace {

struct ConvF32 {
  static constexpr int32_t kDtype = FP_FLOAT32;
  using S = float;
  using C = float;
  static C to(S s) { return s; }
  static S from(C c) { return c; }
};
struct ConvF64 {
  static constexpr int32_t kDtype = FP_FLOAT64;
  using S = double;
  using C = double;
  static C to(S s) { return s; }
  static S from(C c) { return c; }
};
struct ConvF16 {
  static constexpr int32_t kDtype = FP_FLOAT16;
  using S = uint16_t;
  using C = float;
  static C to(S s) { return fp_f16_to_f32(s); }
  static S from(C c) { return fp_f32_to_f16(c); }
};
struct ConvBF16 {
  static constexpr int32_t kDtype = FP_BFLOAT16;
  using S = uint16_t;
  using C = float;
  static C to(S s) { return fp_bf16_to_f32(s); }
  static S from(C c) { return fp_f32_to_bf16(c); }
};

constexpr int kLanes = 8;

// Eight double lanes: the gradient of every dtype is computed here, one fp_grad_term per lane.
struct DoubleLanes {
  using C = double;
  struct R {
    double v[kLanes];
  };
  static R set1(double c) {
    R r;
    for (int k = 0; k < kLanes; ++k) r.v[k] = c;
    return r;
  }
  static R zero() { return set1(0.0); }
  static R add(R a, R b) {
    for (int k = 0; k < kLanes; ++k) a.v[k] += b.v[k];
    return a;
  }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) {
    for (int k = 0; k < kLanes; ++k) x.v[k] = fp_grad_term<L1, L2>(x.v[k], l1.v[k], two_l2.v[k]);
    return x;
  }
};

template <class Conv>
struct ScalarTraits {
  using S = typename Conv::S;
  static constexpr int32_t kDtype = Conv::kDtype;
  using C = typename Conv::C;
  static constexpr int W = kLanes;
  struct R {
    C v[W];
  };
  using D = DoubleLanes;
  static constexpr int DW = 1;
  static D::R to_d(R x, int) {
    D::R d;
    for (int k = 0; k < W; ++k) d.v[k] = double(x.v[k]);
    return d;
  }
  static R from_d(const D::R* d) {
    R r;
    for (int k = 0; k < W; ++k) r.v[k] = C(d[0].v[k]);
    return r;
  }

  static R load(const S* p) {
    R r;
    for (int k = 0; k < W; ++k) r.v[k] = Conv::to(p[k]);
    return r;
  }
  static R load_part(const S* p, int n) {
    R r = zero();
    for (int k = 0; k < n; ++k) r.v[k] = Conv::to(p[k]);
    return r;
  }
  static void store(S* p, R r) {
    for (int k = 0; k < W; ++k) p[k] = Conv::from(r.v[k]);
  }
  static void store_part(S* p, R r, int n) {
    for (int k = 0; k < n; ++k) p[k] = Conv::from(r.v[k]);
  }
  static R zero() { return set1(C(0)); }
  static R set1(C c) {
    R r;
    for (int k = 0; k < W; ++k) r.v[k] = c;
    return r;
  }
  static R add(R a, R b) {
    for (int k = 0; k < W; ++k) a.v[k] += b.v[k];
    return a;
  }
  static R mul(R a, R b) {
    for (int k = 0; k < W; ++k) a.v[k] *= b.v[k];
    return a;
  }
  static R fma(R a, R b, R c) {
    for (int k = 0; k < W; ++k) c.v[k] += a.v[k] * b.v[k];
    return c;
  }
  static R abs(R a) {
    for (int k = 0; k < W; ++k) a.v[k] = std::abs(a.v[k]);
    return a;
  }
  template <bool L1, bool L2>
  static R grad_term(R x, R l1, R two_l2) {
    for (int k = 0; k < W; ++k) x.v[k] = fp_grad_term<L1, L2>(x.v[k], l1.v[k], two_l2.v[k]);
    return x;
  }
  static double hsum(R a) {
    double t = 0.0;
    for (int k = 0; k < W; ++k) t += double(a.v[k]);
    return t;
  }
};

}  // namespace

const KernelTable& kernel_table_scalar() {
  static const KernelTable table =
      loops::with_prox<ScalarTraits<ConvF32>, ScalarTraits<ConvF64>, ScalarTraits<ConvF16>, ScalarTraits<ConvBF16>>(
          loops::make_table<ScalarTraits<ConvF32>, ScalarTraits<ConvF64>, ScalarTraits<ConvF16>,
                            ScalarTraits<ConvBF16>>("scalar"));
  return table;
}

}  // namespace fp::cpu
