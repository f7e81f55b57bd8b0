// The tensor table of one multi-tensor launch, passed BY VALUE as the kernel's parameter (CUDA
// 12.1+ allows 32764 bytes of parameters on sm_70+). Nothing of it lives in device memory, so a
// launch captured in a CUDA graph carries its own copy of the table in the graph node, and a
// replay can never read a table that a capture recorded but did not write. Lists longer than
// kSlots tensors are split into consecutive slices of kSlots, one launch each (tensor_table.cpp).
// Plain C++, no CUDA types: the launchers and the CPU emulation (tests/cuda_emulation) share it.
#pragma once
#include <stdint.h>

namespace fp::cuda {

// Dtype codes are fp_dtype (fastpenalty/fastpenalty.h): 0 .. kNumDtypes - 1.
constexpr int32_t kNumDtypes = 4;

// Bytes per chunk: the unit in which work is split between blocks and the span over which one
// thread accumulates in the compute precision before adding into its float64 running sum. It is
// a byte count, so a block's share of a mixed-dtype list is balanced in memory traffic
// (8192 fp32, 4096 fp64 or 16384 fp16/bf16 elements).
constexpr int64_t kChunkBytes = 32768;
constexpr int64_t chunk_elements(int32_t dtype) { return kChunkBytes / (dtype == 1 ? 8 : dtype == 0 ? 4 : 2); }

// Upper bound on the chunks of one tensor (2^40 chunks is 2^55 bytes, far beyond any device);
// it keeps every index computation on chunks and elements well inside int64.
constexpr int64_t kMaxChunks = int64_t(1) << 40;

// Tensors per launch: 512 * 40 bytes + the rest of the parameters stays under 21 KB.
constexpr int kSlots = 512;

struct TensorEntry {
  uint64_t w;         // device address of the weights
  uint64_t g;         // device address of the gradient (or output); 0 in a value-only table
  int64_t n;          // elements
  int32_t dtype;      // fp_dtype code
  int32_t vector_ok;  // 1 when w (and g) are 16-byte aligned, so 16-byte accesses are legal
};
static_assert(sizeof(TensorEntry) == 32, "no padding in the kernel parameter");

// chunk_begin[t] is the index of slot t's first chunk within this launch, chunk_begin[count] the
// launch's chunk total; an empty tensor owns no chunk (chunk_begin[t] == chunk_begin[t + 1]).
struct TensorTable {
  int64_t count;  // slots in use, 1 .. kSlots
  int64_t chunk_begin[kSlots + 1];
  TensorEntry entries[kSlots];
};

// The host's view of a whole list (arrays of `count` entries; g is null for a value-only list).
struct TensorList {
  const uint64_t* w;
  const uint64_t* g;
  const int64_t* n;
  const int32_t* dtype;
  int64_t count;
};

// Throws std::invalid_argument naming the first bad entry (dtype, size, null or misaligned
// pointer, w/g overlap); writes nothing.
void validate_list(const TensorList& list);

// Fills `table` with slots [first, first + count) of a validated list; returns its chunk total.
int64_t pack_table(const TensorList& list, int64_t first, int64_t count, TensorTable& table);

constexpr int64_t launches_for(int64_t num_tensors) { return (num_tensors + kSlots - 1) / kSlots; }

}  // namespace fp::cuda
