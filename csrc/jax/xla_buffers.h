// XLA FFI buffers in the C ABI's terms: dtype codes, element counts, factor scalars, errors.
#pragma once
#include <cstdint>
#include <string>

#include "fastpenalty/fastpenalty.h"
#include "xla/ffi/api/ffi.h"

namespace fp::jax {

namespace ffi = ::xla::ffi;

// The C ABI dtype code of an XLA element type, or -1 for one the kernels do not take.
inline int32_t dtype_code(ffi::DataType t) {
  switch (t) {
    case ffi::DataType::F32:
      return FP_FLOAT32;
    case ffi::DataType::F64:
      return FP_FLOAT64;
    case ffi::DataType::F16:
      return FP_FLOAT16;
    case ffi::DataType::BF16:
      return FP_BFLOAT16;
    default:
      return -1;
  }
}

inline ffi::Error unsupported_dtype(const std::string& what) {
  return ffi::Error::InvalidArgument(what + ": fastpenalty supports float32, float64, float16 and bfloat16");
}

// A C ABI status as an XLA error (raised in Python when the computation runs).
inline ffi::Error from_status(fp_status status) {
  if (status == FP_OK) return ffi::Error::Success();
  std::string message = std::string("fastpenalty: ") + fp_last_error();
  if (status == FP_ERR_INVALID_ARGUMENT || status == FP_ERR_UNSUPPORTED_DTYPE)
    return ffi::Error::InvalidArgument(std::move(message));
  return ffi::Error::Internal(std::move(message));
}

// Factors and cotangents arrive as float32 or float64 arrays (traced values, so that changing
// them never recompiles); entry i as a double, or NaN when the buffer is not a float32/float64
// array with more than i elements (which the C ABI then rejects as a bad factor).
inline double scalar_at(const ffi::AnyBuffer& b, size_t i = 0) {
  if (i >= b.element_count()) return __builtin_nan("");
  if (b.element_type() == ffi::DataType::F64) return static_cast<const double*>(b.untyped_data())[i];
  if (b.element_type() == ffi::DataType::F32) return static_cast<const float*>(b.untyped_data())[i];
  return __builtin_nan("");
}

// The value result: float64 when the caller asked for it (every weight float64), else float32.
inline ffi::Error store_value(ffi::Result<ffi::AnyBuffer>& out, double value) {
  if (out->element_type() == ffi::DataType::F64) {
    *static_cast<double*>(out->untyped_data()) = value;
  } else if (out->element_type() == ffi::DataType::F32) {
    *static_cast<float*>(out->untyped_data()) = static_cast<float>(value);
  } else {
    return ffi::Error::InvalidArgument("fastpenalty: the value result must be float32 or float64");
  }
  return ffi::Error::Success();
}

}  // namespace fp::jax
