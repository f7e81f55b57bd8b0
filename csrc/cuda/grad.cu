// Launcher of out = grad(w) for one tensor (kernel in grad_kernels.cuh).
#include <cuda_runtime.h>
#include <stdint.h>

#include <stdexcept>
#include <string>

#include "cuda/api.h"
#include "cuda/grad_kernels.cuh"
#include "cuda/launch_util.cuh"
#include "cuda/tensor_table.h"

namespace fp::cuda {
namespace {

using kernels::grad_kernel;

template <int Code>
void launch_for(uint64_t w, uint64_t out, int64_t n, const double* l1, const double* l2, int device,
                cudaStream_t stream) {
  using F = Format<Code>;
  using Bits = typename F::Bits;
  const bool vector_ok = w % 16 == 0 && out % 16 == 0;
  const int64_t units = vector_ok ? n / F::kLanes + (n % F::kLanes != 0 ? 1 : 0) : n;
  const int64_t wanted = (units + kThreads - 1) / kThreads;
  const int64_t cap = int64_t(multiprocessor_count(device)) * kGradBlocksPerSm;
  const unsigned grid = static_cast<unsigned>(wanted < cap ? wanted : cap);
  launch_kernel(grad_kernel<F>, grid, stream, reinterpret_cast<const Bits*>(static_cast<uintptr_t>(w)),
                reinterpret_cast<Bits*>(static_cast<uintptr_t>(out)), n, vector_ok, l1, l2);
  check_launch("grad_kernel");
}

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("fastpenalty._cuda.grad: " + what);
}

}  // namespace

void launch_grad(uint64_t w, uint64_t out, int64_t n, int32_t dtype, uint64_t l1, uint64_t l2, int device,
                 uint64_t stream) {
  if (dtype < 0 || dtype >= kNumDtypes) bad("unsupported dtype code " + std::to_string(dtype));
  if (n < 1) bad("size must be >= 1 (skip the launch for empty tensors), not " + std::to_string(n));
  if (n > (int64_t(1) << 55)) bad("too many elements (" + std::to_string(n) + ")");
  const uint64_t size = uint64_t(fp_dtype_size(dtype));
  const uint64_t bytes = uint64_t(n) * size;
  if (w == 0 || w % size != 0) bad("invalid weight pointer");
  if (out == 0 || out % size != 0) bad("invalid output pointer");
  if (w < out + bytes && out < w + bytes) bad("weight and output memory overlap");
  if (l1 == 0 || l1 % 8 != 0 || l2 == 0 || l2 % 8 != 0) bad("l1 and l2 must be float64 device pointers");

  DeviceGuard guard(device);
  const cudaStream_t s = as_stream(stream);
  const auto* l1p = reinterpret_cast<const double*>(static_cast<uintptr_t>(l1));
  const auto* l2p = reinterpret_cast<const double*>(static_cast<uintptr_t>(l2));
  switch (dtype) {
    case FP_FLOAT32:
      return launch_for<FP_FLOAT32>(w, out, n, l1p, l2p, device, s);
    case FP_FLOAT64:
      return launch_for<FP_FLOAT64>(w, out, n, l1p, l2p, device, s);
    case FP_FLOAT16:
      return launch_for<FP_FLOAT16>(w, out, n, l1p, l2p, device, s);
    default:
      return launch_for<FP_BFLOAT16>(w, out, n, l1p, l2p, device, s);
  }
}

void load_grad_kernels() {
  cudaFuncAttributes attr;
  check_cuda(cudaFuncGetAttributes(&attr, grad_kernel<Format<FP_FLOAT32>>), "loading grad_kernel<float32>");
  check_cuda(cudaFuncGetAttributes(&attr, grad_kernel<Format<FP_FLOAT64>>), "loading grad_kernel<float64>");
  check_cuda(cudaFuncGetAttributes(&attr, grad_kernel<Format<FP_FLOAT16>>), "loading grad_kernel<float16>");
  check_cuda(cudaFuncGetAttributes(&attr, grad_kernel<Format<FP_BFLOAT16>>), "loading grad_kernel<bfloat16>");
}

}  // namespace fp::cuda
