// Launcher of the proximal step (kernels in prox_kernels.cuh): argument checks (including that no
// two tensors share memory, since every one is written), the slices of kSlots tensors with their
// tables by value, then the fixed-order sums of the value and of the zero count. As the
// multi-tensor launcher: nothing cached, only w, scratch, out and zeros_out written on the device.
#include <cuda_runtime.h>
#include <stdint.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "cuda/api.h"
#include "cuda/launch_util.cuh"
#include "cuda/prox_kernels.cuh"

namespace fp::cuda {
namespace {

using kernels::prox_pass;
using kernels::ProxArgs;
using kernels::sum_prox_partials;

static_assert(sizeof(ProxArgs) <= 32764, "kernel parameters are limited to 32764 bytes (CUDA 12.1+)");

constexpr const char* kWhere = "fastpenalty._cuda.prox";

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument(std::string(kWhere) + ": " + what);
}

// Every tensor is written: no two may share a byte (one sweep over the ranges sorted by start).
void check_disjoint(const TensorList& list) {
  struct Range {
    uint64_t begin, end;
    int64_t tensor;
  };
  std::vector<Range> ranges;
  for (int64_t t = 0; t < list.count; ++t)
    if (list.n[t] > 0)
      ranges.push_back({list.w[t], list.w[t] + uint64_t(list.n[t]) * uint64_t(fp_dtype_size(list.dtype[t])), t});
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  const Range* reach = nullptr;
  for (const Range& r : ranges) {
    if (reach && r.begin < reach->end)
      bad("tensor " + std::to_string(r.tensor) + " overlaps tensor " + std::to_string(reach->tensor) + " in memory");
    if (!reach || r.end > reach->end) reach = &r;
  }
}

// Blocks of all launches for a list of num_tensors at most: the value partials take the first
// this many doubles of the scratch, the zero counts the next as many.
int64_t max_blocks(int64_t num_tensors, int sms) { return launches_for(num_tensors) * pass_grid(kMaxBlocks, sms); }

}  // namespace

int64_t prox_scratch_bytes(int64_t num_tensors, int device) {
  if (num_tensors < 0) bad("negative tensor count");
  const int count = device_count();
  if (device < 0 || device >= count) bad("no CUDA device " + std::to_string(device));
  return 2 * max_blocks(num_tensors, multiprocessor_count(device)) * int64_t(sizeof(double));
}

void launch_prox(const ProxLaunch& p) {
  const int64_t count = int64_t(p.w.size());
  check_lengths(kWhere, p.w.size(), p.n.size(), p.dtype.size());
  if (count < 1) bad("empty tensor list");
  check_factors(kWhere, "lrs", p.lrs, p.lr_count, count);
  check_factors(kWhere, "l1s", p.l1s, p.l1_count, count);
  check_factors(kWhere, "l2s", p.l2s, p.l2_count, count);
  const TensorList list{p.w.data(), nullptr, p.n.data(), p.dtype.data(), count};
  validate_list(list);
  check_disjoint(list);
  if (p.out == 0 || p.out % (p.out_f64 ? 8 : 4) != 0) bad("invalid output pointer");
  if (p.zeros_out == 0 || p.zeros_out % 8 != 0) bad("invalid zero-count pointer");
  if (p.scratch == 0 || p.scratch % 8 != 0) bad("invalid scratch pointer");

  DeviceGuard guard(p.device);
  const int sms = multiprocessor_count(p.device);
  const int64_t half = max_blocks(count, sms);
  if (p.scratch_capacity < 2 * half * int64_t(sizeof(double)))
    bad("the scratch buffer needs " + std::to_string(2 * half * int64_t(sizeof(double))) + " bytes");
  const cudaStream_t stream = as_stream(p.stream);

  ProxArgs a;
  a.lrs = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.lrs));
  a.l1s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l1s));
  a.l2s = reinterpret_cast<const double*>(static_cast<uintptr_t>(p.l2s));
  a.lr_step = p.lr_count == 1 ? 0 : 1;
  a.l1_step = p.l1_count == 1 ? 0 : 1;
  a.l2_step = p.l2_count == 1 ? 0 : 1;
  a.list_count = count;
  auto* partials = reinterpret_cast<double*>(static_cast<uintptr_t>(p.scratch));
  const int64_t used = for_each_slice(list, a.table, sms, [&](int64_t first, int64_t grid, int64_t before) {
    a.first = first;
    a.partials = partials + before;
    a.zero_partials = partials + half + before;
    launch_kernel(prox_pass, unsigned(grid), stream, a);
    check_launch("prox_pass");
  });
  launch_kernel(sum_prox_partials, 1u, stream, static_cast<const double*>(partials),
                static_cast<const double*>(partials + half), used, reinterpret_cast<void*>(static_cast<uintptr_t>(p.out)),
                p.out_f64, reinterpret_cast<long long*>(static_cast<uintptr_t>(p.zeros_out)));
  check_launch("sum_prox_partials");
}

void load_prox_kernels() {
  cudaFuncAttributes attr;
  check_cuda(cudaFuncGetAttributes(&attr, prox_pass), "loading prox_pass");
  check_cuda(cudaFuncGetAttributes(&attr, sum_prox_partials), "loading sum_prox_partials");
}

}  // namespace fp::cuda
