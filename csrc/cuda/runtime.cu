// Runtime facts for fastpenalty._cuda. The CUDA runtime is linked statically, so these work (and
// say "nothing there") on machines with no driver or no GPU instead of failing to import.
#include <cuda_runtime.h>

#include <string>

#include "cuda/api.h"
#include "cuda/launch_util.cuh"

namespace fp::cuda {

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // a failed query must not linger as the "last error" of a later launch
    return 0;
  }
  return count;
}

std::string device_query_error() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err == cudaSuccess) return "";
  cudaGetLastError();
  return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
}

int runtime_version() {
  int v = 0;
  if (cudaRuntimeGetVersion(&v) != cudaSuccess) return 0;
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return v;
}

void warm_up(int device) {
  DeviceGuard guard(device);
  load_multi_tensor_kernels();
  load_grad_kernels();
  load_prox_kernels();
}

}  // namespace fp::cuda
