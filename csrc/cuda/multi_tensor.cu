// Launcher of the multi-tensor pass (kernels in multi_tensor_kernels.cuh): argument checks, the
// grid that fixes the reduction order, and the launches on the caller's stream.
#include <cuda_runtime.h>
#include <stdint.h>

#include <stdexcept>
#include <string>

#include "cuda/api.h"
#include "cuda/launch_util.cuh"
#include "cuda/multi_tensor_kernels.cuh"

namespace fp::cuda {
namespace {

using kernels::Mode;
using kernels::multi_tensor_pass;
using kernels::PassArgs;
using kernels::sum_partials;

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("fastpenalty._cuda: " + what);
}

void check_factors(const char* name, uint64_t ptr, int64_t count, int64_t num_tensors) {
  if (ptr == 0 || ptr % 8 != 0) bad(std::string(name) + " is not a valid float64 device pointer");
  if (count != 1 && count != num_tensors)
    bad(std::string(name) + " has " + std::to_string(count) + " entries for " + std::to_string(num_tensors) +
        " tensors (give 1 or one per tensor)");
}

}  // namespace

int64_t grid_blocks(int64_t total_chunks, int device) {
  if (total_chunks < 1 || total_chunks > kMaxTotalChunks)
    bad("chunk count " + std::to_string(total_chunks) + " out of range");
  const int count = device_count();
  if (device < 0 || device >= count) bad("no CUDA device " + std::to_string(device));
  const int64_t cap = int64_t(multiprocessor_count(device)) * kPassBlocksPerSm;
  const int64_t blocks = total_chunks < cap ? total_chunks : cap;
  return blocks < kMaxBlocks ? blocks : kMaxBlocks;
}

int64_t scratch_bytes(int64_t num_blocks) {
  if (num_blocks < 1 || num_blocks > kMaxBlocks) bad("block count " + std::to_string(num_blocks) + " out of range");
  return num_blocks * int64_t(sizeof(double));
}

void launch_multi_tensor(const MultiTensorLaunch& p) {
  if (p.mode < 0 || p.mode > 2) bad("mode must be 0 (value), 1 (accumulate) or 2 (grad), not " + std::to_string(p.mode));
  const Mode mode = static_cast<Mode>(p.mode);
  if (p.num_tensors < 1) bad("empty tensor table");
  if (p.table == 0 || p.table % 8 != 0 || p.table_capacity < table_bytes(p.num_tensors))
    bad("the tensor table is not a valid device buffer of " + std::to_string(table_bytes(p.num_tensors)) +
        " bytes");
  if (p.total_chunks < 1 || p.total_chunks > kMaxTotalChunks)
    bad("chunk count " + std::to_string(p.total_chunks) + " out of range");
  check_factors("l1s", p.l1s, p.l1_count, p.num_tensors);
  check_factors("l2s", p.l2s, p.l2_count, p.num_tensors);
  if (p.num_blocks < 1 || p.num_blocks > p.total_chunks || p.num_blocks > kMaxBlocks)
    bad("block count " + std::to_string(p.num_blocks) + " out of range");
  if (mode != Mode::overwrite) {
    if (p.scratch == 0 || p.scratch % 8 != 0 || p.scratch_capacity < scratch_bytes(p.num_blocks))
      bad("the scratch buffer needs " + std::to_string(scratch_bytes(p.num_blocks)) + " bytes");
    if (p.out == 0 || p.out % (p.out_f64 ? 8 : 4) != 0) bad("invalid output pointer");
  }

  DeviceGuard guard(p.device);
  const cudaStream_t stream = as_stream(p.stream);
  const char* table = reinterpret_cast<const char*>(static_cast<uintptr_t>(p.table));
  PassArgs a;
  a.entries = reinterpret_cast<const TensorEntry*>(table);
  a.chunk_begin = reinterpret_cast<const int64_t*>(table + chunk_begin_offset(p.num_tensors));
  a.num_tensors = p.num_tensors;
  a.total_chunks = p.total_chunks;
  a.l1s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l1s));
  a.l2s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l2s));
  a.l1_step = p.l1_count == 1 ? 0 : 1;
  a.l2_step = p.l2_count == 1 ? 0 : 1;
  a.partials = reinterpret_cast<double*>(static_cast<uintptr_t>(p.scratch));

  const unsigned grid = static_cast<unsigned>(p.num_blocks);
  switch (mode) {
    case Mode::value:
      multi_tensor_pass<Mode::value><<<grid, kThreads, 0, stream>>>(a);
      break;
    case Mode::accumulate:
      multi_tensor_pass<Mode::accumulate><<<grid, kThreads, 0, stream>>>(a);
      break;
    case Mode::overwrite:
      multi_tensor_pass<Mode::overwrite><<<grid, kThreads, 0, stream>>>(a);
      break;
  }
  check_launch("multi_tensor_pass");
  if (mode == Mode::overwrite) return;
  sum_partials<<<1, kThreads, 0, stream>>>(a.partials, p.num_blocks, reinterpret_cast<void*>(static_cast<uintptr_t>(p.out)),
                                           p.out_f64);
  check_launch("sum_partials");
}

void load_multi_tensor_kernels() {
  cudaFuncAttributes attr;
  check_cuda(cudaFuncGetAttributes(&attr, multi_tensor_pass<Mode::value>), "loading multi_tensor_pass<value>");
  check_cuda(cudaFuncGetAttributes(&attr, multi_tensor_pass<Mode::accumulate>),
             "loading multi_tensor_pass<accumulate>");
  check_cuda(cudaFuncGetAttributes(&attr, multi_tensor_pass<Mode::overwrite>), "loading multi_tensor_pass<grad>");
  check_cuda(cudaFuncGetAttributes(&attr, sum_partials), "loading sum_partials");
}

}  // namespace fp::cuda
