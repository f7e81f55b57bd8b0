// Storage formats as seen by the kernels: each dtype is moved around as raw bits (Bits), so one
// 16-byte vector access carries kLanes elements of any dtype. Conversions are the bit-exact ones
// of common/dtype.h (the CPU's own), so fp16/bf16 rounding and NaN payloads match the CPU bit for
// bit; the hardware intrinsics quiet or canonicalize NaNs differently.
#pragma once
#include <stdint.h>

#include "common/dtype.h"
#include "common/penalty_math.h"

namespace fp::cuda {

template <int Code>
struct Format;

// Acc is the type of the |w| and w^2 sums (as on the CPU); Round(u) is the contract's rounding of
// a double result to the storage type (double -> float32 -> fp16/bf16, each to nearest even).
template <>
struct Format<FP_FLOAT32> {
  using Bits = uint32_t;
  using Acc = float;
  static constexpr int kLanes = 4;
  static __device__ __forceinline__ Acc load(Bits b) { return __uint_as_float(b); }
  static __device__ __forceinline__ Bits round(double u) { return __float_as_uint(__double2float_rn(u)); }
  static __device__ __forceinline__ Bits round(float u) { return __float_as_uint(u); }
};

template <>
struct Format<FP_FLOAT64> {
  using Bits = unsigned long long;
  using Acc = double;
  static constexpr int kLanes = 2;
  static __device__ __forceinline__ Acc load(Bits b) { return __longlong_as_double((long long)b); }
  static __device__ __forceinline__ Bits round(double u) { return (Bits)__double_as_longlong(u); }
};

template <>
struct Format<FP_FLOAT16> {
  using Bits = uint16_t;
  using Acc = float;
  static constexpr int kLanes = 8;
  static __device__ __forceinline__ Acc load(Bits b) { return fp_f16_to_f32(b); }
  static __device__ __forceinline__ Bits round(double u) { return fp_f32_to_f16(__double2float_rn(u)); }
  static __device__ __forceinline__ Bits round(float u) { return fp_f32_to_f16(u); }
};

template <>
struct Format<FP_BFLOAT16> {
  using Bits = uint16_t;
  using Acc = float;
  static constexpr int kLanes = 8;
  static __device__ __forceinline__ Acc load(Bits b) { return fp_bf16_to_f32(b); }
  static __device__ __forceinline__ Bits round(double u) { return fp_f32_to_bf16(__double2float_rn(u)); }
  static __device__ __forceinline__ Bits round(float u) { return fp_f32_to_bf16(u); }
};

__device__ __forceinline__ float mul_add(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double mul_add(double a, double b, double c) { return __fma_rn(a, b, c); }

// One element of grad(w) (ACC false) or g + grad(w) (ACC true), exactly as the CPU kernels form it
// (the rounding contract of common/penalty_math.h): fp_grad_term in float32 when `narrow` (weights
// that are not float64 and fp_factors_fit_float), else in double on w and g widened exactly, then
// Round. `narrow` is uniform over a tensor. The module is compiled with --fmad=false, so no
// multiply-add is contracted here.
template <class F, bool L1, bool L2, bool ACC>
__device__ __forceinline__ typename F::Bits grad_element(typename F::Acc x, typename F::Bits g, double l1,
                                                         double two_l2, bool narrow) {
  if constexpr (sizeof(typename F::Acc) == sizeof(float)) {
    if (narrow) {
      const float t = fp_grad_term<L1, L2>(x, __double2float_rn(l1), __double2float_rn(two_l2));
      return F::round(ACC ? F::load(g) + t : t);
    }
  }
  const double t = fp_grad_term<L1, L2>(double(x), l1, two_l2);
  return F::round(ACC ? double(F::load(g)) + t : t);
}

// One 16-byte vector <-> its lanes. memcpy between registers compiles to moves, not memory.
template <class F>
struct Lanes {
  typename F::Bits v[F::kLanes];
};
static_assert(sizeof(Lanes<Format<FP_FLOAT16>>) == 16 && sizeof(Lanes<Format<FP_FLOAT64>>) == 16, "16-byte vectors");

template <class F>
__device__ __forceinline__ Lanes<F> unpack(const uint4& raw) {
  Lanes<F> l;
  memcpy(&l, &raw, 16);
  return l;
}

template <class F>
__device__ __forceinline__ uint4 pack(const Lanes<F>& l) {
  uint4 raw;
  memcpy(&raw, &l, 16);
  return raw;
}

}  // namespace fp::cuda
