// The one C++ definition of the dtype facts (code -> size, name; the result-dtype rule), shared by
// the CPU and CUDA code and exported through the C ABI (fp_dtype_itemsize, fp_dtype_name,
// fp_result_dtype), from which Python's fastpenalty._dtypes is built. Also bit-exact fp16/bf16 <->
// fp32 conversions (round to nearest even) usable on host and device.
#pragma once
#include <stdint.h>
#include <string.h>

#include "fastpenalty/fastpenalty.h"  // fp_dtype: FP_FLOAT32, FP_FLOAT64, FP_FLOAT16, FP_BFLOAT16

#if defined(__CUDACC__)
#define FP_HD __host__ __device__ __forceinline__
#else
#define FP_HD __attribute__((always_inline)) inline
#endif

// Functions in the shared headers have internal linkage (static): each ISA's translation unit is
// compiled with its own flags, and one shared out-of-line copy could carry AVX-512 code into the
// scalar path.
#define FP_FN static FP_HD


FP_FN bool fp_dtype_known(int32_t code) { return code >= 0 && code < FP_DTYPE_COUNT; }

// Bytes per element; 0 for an unknown code (callers check fp_dtype_known first).
FP_FN int fp_dtype_size(int32_t code) {
  switch (code) {
    case FP_FLOAT32:
      return 4;
    case FP_FLOAT64:
      return 8;
    case FP_FLOAT16:
    case FP_BFLOAT16:
      return 2;
    default:
      return 0;
  }
}

FP_FN const char* fp_dtype_name_of(int32_t code) {
  switch (code) {
    case FP_FLOAT32:
      return "float32";
    case FP_FLOAT64:
      return "float64";
    case FP_FLOAT16:
      return "float16";
    case FP_BFLOAT16:
      return "bfloat16";
    default:
      return nullptr;
  }
}

// The contract's result dtype: float64 only when every input is float64, else float32; -1 for an
// unknown code.
FP_FN int32_t fp_result_dtype_of(int64_t count, const int32_t* codes) {
  bool all_fp64 = count > 0;
  for (int64_t i = 0; i < count; ++i) {
    if (!fp_dtype_known(codes[i])) return -1;
    all_fp64 = all_fp64 && codes[i] == FP_FLOAT64;
  }
  return all_fp64 ? FP_FLOAT64 : FP_FLOAT32;
}

FP_FN uint32_t fp_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
FP_FN float fp_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

FP_FN float fp_bf16_to_f32(uint16_t h) { return fp_bits_f32((uint32_t)h << 16); }

FP_FN uint16_t fp_f32_to_bf16(float f) {
  uint32_t x = fp_f32_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

FP_FN float fp_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    float v = (float)mant * 5.9604644775390625e-8f;  // mant * 2^-24, exact
    return sign ? -v : v;
  }
  if (exp == 31) return fp_bits_f32(sign | 0x7f800000u | (mant << 13));
  return fp_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

FP_FN uint16_t fp_f32_to_f16(float f) {
  uint32_t x = fp_f32_bits(f);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // NaN
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to inf (>= 65520)
  if (a < 0x38800000u) {                                    // fp16 subnormal or zero
    if (a <= 0x33000000u) return sign;                      // <= 2^-25 rounds to 0
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - e;
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
  }
  uint32_t r = a - 0x38000000u;  // rebias the exponent from 127 to 15
  uint32_t h = r >> 13;
  uint32_t rem = r & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return (uint16_t)(sign | h);
}
