// The tensor table of one multi-tensor launch: written on the host (into pinned memory the caller
// owns), copied to the device by the caller, read by the kernels. Plain C++, no CUDA types.
//
// Layout, all little-endian 64-bit words:
//   TensorEntry entries[T]          at byte 0
//   int64_t     chunk_begin[T + 1]  at byte T * sizeof(TensorEntry)
// chunk_begin[t] is the global index of tensor t's first chunk and chunk_begin[T] the total;
// an empty tensor owns no chunk (chunk_begin[t] == chunk_begin[t + 1]).
#pragma once
#include <stdint.h>

namespace fp::cuda {

// Dtype codes are fp_dtype (fastpenalty/fastpenalty.h): 0 .. kNumDtypes - 1.
constexpr int32_t kNumDtypes = 4;

// Elements per chunk: the unit in which work is split between blocks and the span over which one
// thread accumulates in the compute precision before adding into its float64 running sum.
constexpr int64_t kChunk = 8192;

// Upper bound on chunks in one launch (2^42 chunks = 2^55 elements, far beyond any device); it
// keeps every index computation on chunks well inside int64.
constexpr int64_t kMaxTotalChunks = int64_t(1) << 42;

struct TensorEntry {
  uint64_t w;         // device address of the weights
  uint64_t g;         // device address of the gradient; 0 in a value-only table
  int64_t n;          // elements
  int32_t dtype;      // fp_dtype_code
  int32_t vector_ok;  // 1 when w (and g) are 16-byte aligned, so 16-byte accesses are legal
};
static_assert(sizeof(TensorEntry) == 32, "the table layout is part of the host/device contract");

constexpr int64_t table_bytes_for(int64_t num_tensors) {
  return num_tensors * int64_t(sizeof(TensorEntry)) + (num_tensors + 1) * int64_t(sizeof(int64_t));
}

constexpr int64_t chunk_begin_offset(int64_t num_tensors) {
  return num_tensors * int64_t(sizeof(TensorEntry));
}

}  // namespace fp::cuda
