// Launcher of the multi-tensor pass (kernels in multi_tensor_kernels.cuh): argument checks, the
// fixed partition of the list into slices of kSlots tensors, each slice's table packed into the
// kernel's by-value parameter, and the launches on the caller's stream. Nothing is cached and
// nothing but the caller's scratch and out is written on the device besides g, so a call is safe
// to capture in a CUDA graph, on any stream, first call included.
#include <cuda_runtime.h>
#include <stdint.h>

#include <stdexcept>
#include <string>

#include "cuda/api.h"
#include "cuda/launch_util.cuh"
#include "cuda/multi_tensor_kernels.cuh"

namespace fp::cuda {
namespace {

using kernels::kSums;
using kernels::Mode;
using kernels::multi_tensor_pass;
using kernels::PassArgs;
using kernels::sum_partials;

static_assert(sizeof(PassArgs) <= 32764, "kernel parameters are limited to 32764 bytes (CUDA 12.1+)");

constexpr const char* kWhere = "fastpenalty._cuda";

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(std::string(kWhere) + ": " + what);
}

TensorList list_of(const MultiTensorLaunch& p) {
  const size_t count = p.w.size();
  check_lengths(kWhere, count, p.n.size(), p.dtype.size());
  if (p.mode != 0 && p.g.size() != count)
    bad(std::to_string(count) + " weights but " + std::to_string(p.g.size()) + " gradients");
  if (p.mode == 0 && !p.g.empty()) bad("a value pass takes no gradients");
  return TensorList{p.w.data(), p.mode != 0 ? p.g.data() : nullptr, p.n.data(), p.dtype.data(), int64_t(count)};
}

template <Mode M>
void launch_slices(const MultiTensorLaunch& p, const TensorList& list, int sms, cudaStream_t stream) {
  PassArgs a;
  a.l1_step = p.l1_count == 1 ? 0 : 1;
  a.l2_step = p.l2_count == 1 ? 0 : 1;
  const auto* l1s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l1s));
  const auto* l2s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l2s));
  auto* partials = reinterpret_cast<double*>(static_cast<uintptr_t>(p.scratch));
  const int64_t used = for_each_slice(list, a.table, sms, [&](int64_t first, int64_t grid, int64_t before) {
    a.l1s = l1s + first * a.l1_step;
    a.l2s = l2s + first * a.l2_step;
    a.partials = kSums<M> ? partials + before : nullptr;
    launch_kernel(multi_tensor_pass<M>, unsigned(grid), stream, a);
    check_launch("multi_tensor_pass");
  });
  if constexpr (kSums<M>) {
    launch_kernel(sum_partials, 1u, stream, static_cast<const double*>(partials), used,
                  reinterpret_cast<void*>(static_cast<uintptr_t>(p.out)), p.out_f64);
    check_launch("sum_partials");
  }
}

}  // namespace

int64_t scratch_bytes(int64_t num_tensors, int device) {
  if (num_tensors < 0) bad("negative tensor count");
  const int count = device_count();
  if (device < 0 || device >= count) bad("no CUDA device " + std::to_string(device));
  return launches_for(num_tensors) * pass_grid(kMaxBlocks, multiprocessor_count(device)) * int64_t(sizeof(double));
}

void launch_multi_tensor(const MultiTensorLaunch& p) {
  if (p.mode < 0 || p.mode > 2) bad("mode must be 0 (value), 1 (accumulate) or 2 (grad), not " + std::to_string(p.mode));
  const Mode mode = static_cast<Mode>(p.mode);
  const TensorList list = list_of(p);
  if (list.count < 1) bad("empty tensor list");
  check_factors(kWhere, "l1s", p.l1s, p.l1_count, list.count);
  check_factors(kWhere, "l2s", p.l2s, p.l2_count, list.count);
  validate_list(list);
  if (mode != Mode::overwrite) {
    if (p.out == 0 || p.out % (p.out_f64 ? 8 : 4) != 0) bad("invalid output pointer");
    if (p.scratch == 0 || p.scratch % 8 != 0) bad("invalid scratch pointer");
  }

  DeviceGuard guard(p.device);
  const int sms = multiprocessor_count(p.device);
  if (mode != Mode::overwrite) {
    const int64_t need = launches_for(list.count) * pass_grid(kMaxBlocks, sms) * int64_t(sizeof(double));
    if (p.scratch_capacity < need) bad("the scratch buffer needs " + std::to_string(need) + " bytes");
  }
  const cudaStream_t stream = as_stream(p.stream);
  switch (mode) {
    case Mode::value:
      return launch_slices<Mode::value>(p, list, sms, stream);
    case Mode::accumulate:
      return launch_slices<Mode::accumulate>(p, list, sms, stream);
    case Mode::overwrite:
      return launch_slices<Mode::overwrite>(p, list, sms, stream);
  }
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
