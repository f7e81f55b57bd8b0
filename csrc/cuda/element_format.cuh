// Storage formats as seen by the kernels: each dtype is moved around as raw bits (Bits), so one
// 16-byte vector access carries kLanes elements of any dtype, and is converted to its compute
// type (Acc: float for fp32/fp16/bf16, double for fp64) with hardware conversions. Rounding back
// to fp16/bf16 is round-to-nearest-even, like the CPU path.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "common/dtype.h"

namespace fp::cuda {

template <int Code>
struct Format;

template <>
struct Format<FP_FLOAT32> {
  using Bits = unsigned int;
  using Acc = float;
  static constexpr int kLanes = 4;
  static __device__ __forceinline__ Acc load(Bits b) { return __uint_as_float(b); }
  static __device__ __forceinline__ Bits store(Acc a) { return __float_as_uint(a); }
  static __device__ __forceinline__ Acc magnitude(Acc a) { return fabsf(a); }
};

template <>
struct Format<FP_FLOAT64> {
  using Bits = unsigned long long;
  using Acc = double;
  static constexpr int kLanes = 2;
  static __device__ __forceinline__ Acc load(Bits b) { return __longlong_as_double((long long)b); }
  static __device__ __forceinline__ Bits store(Acc a) { return (Bits)__double_as_longlong(a); }
  static __device__ __forceinline__ Acc magnitude(Acc a) { return fabs(a); }
};

template <>
struct Format<FP_FLOAT16> {
  using Bits = unsigned short;
  using Acc = float;
  static constexpr int kLanes = 8;
  static __device__ __forceinline__ Acc load(Bits b) { return __half2float(__ushort_as_half(b)); }
  static __device__ __forceinline__ Bits store(Acc a) { return __half_as_ushort(__float2half_rn(a)); }
  static __device__ __forceinline__ Acc magnitude(Acc a) { return fabsf(a); }
};

template <>
struct Format<FP_BFLOAT16> {
  using Bits = unsigned short;
  using Acc = float;
  static constexpr int kLanes = 8;
  static __device__ __forceinline__ Acc load(Bits b) { return __uint_as_float((unsigned int)b << 16); }
  static __device__ __forceinline__ Bits store(Acc a) { return __bfloat16_as_ushort(__float2bfloat16_rn(a)); }
  static __device__ __forceinline__ Acc magnitude(Acc a) { return fabsf(a); }
};

__device__ __forceinline__ float mul_add(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double mul_add(double a, double b, double c) { return __fma_rn(a, b, c); }

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
