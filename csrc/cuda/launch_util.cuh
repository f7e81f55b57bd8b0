// Host helpers shared by the launchers: error translation, the device guard, stream handles and
// the one place a kernel is launched. Under FP_CUDA_EMULATION (tests/cuda_emulation) the CUDA
// runtime is the emulation's and fp_emulated_launch runs the kernel on CPU threads, so the
// launchers' own code is what the emulation tests.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include <stdexcept>
#include <string>

#include "cuda/launch_geometry.h"
#include "cuda/tensor_table.h"

namespace fp::cuda {

[[noreturn]] inline void throw_cuda(cudaError_t err, const char* what) {
  throw std::runtime_error(std::string("fastpenalty._cuda: ") + what + ": " + cudaGetErrorString(err) + " (" +
                           cudaGetErrorName(err) + ")");
}

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw_cuda(err, what);
}

// Raises the error of the launch just made (configuration errors, missing kernel image, ...).
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda(err, kernel);
}

// Makes `device` current for the launches in scope (torch may have another device current, and a
// stream can only take launches while its own device is current); restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    int count = 0;
    check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (device < 0 || device >= count)
      throw std::invalid_argument("fastpenalty._cuda: no CUDA device " + std::to_string(device));
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) {
      check_cuda(cudaSetDevice(device), "cudaSetDevice");
      changed_ = true;
    }
  }
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

inline cudaStream_t as_stream(uint64_t handle) { return reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(handle)); }

template <class... Params, class... Args>
inline void launch_kernel(void (*kernel)(Params...), unsigned grid, cudaStream_t stream, const Args&... args) {
#ifdef FP_CUDA_EMULATION
  fp_emulated_launch(kernel, grid, kThreads, stream, args...);
#else
  kernel<<<grid, kThreads, 0, stream>>>(args...);
#endif
}

inline int multiprocessor_count(int device) {
  int sms = 0;
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return sms > 0 ? sms : 1;
}

// The checks both list launchers make on their arguments; `where` names the launcher in the
// std::invalid_argument they throw.
inline void check_lengths(const char* where, size_t w, size_t n, size_t dtype) {
  if (n != w || dtype != w)
    throw std::invalid_argument(std::string(where) + ": w, n and dtype have different lengths (" + std::to_string(w) +
                                ", " + std::to_string(n) + ", " + std::to_string(dtype) + ")");
}
inline void check_factors(const char* where, const char* name, uint64_t ptr, int64_t count, int64_t num_tensors) {
  if (ptr == 0 || ptr % 8 != 0)
    throw std::invalid_argument(std::string(where) + ": " + name + " is not a valid float64 device pointer");
  if (count != 1 && count != num_tensors)
    throw std::invalid_argument(std::string(where) + ": " + name + " has " + std::to_string(count) + " entries for " +
                                std::to_string(num_tensors) + " tensors (give 1 or one per tensor)");
}

// A validated list in slices of kSlots tensors, in order: packs each slice's table into `table`
// and calls launch(first, grid, used) for every slice with work, `first` its first tensor, `grid`
// its blocks and `used` the blocks launched before it (where its partials start). Returns the
// blocks launched in all: the partials the final sum adds, in slice order.
template <class Launch>
int64_t for_each_slice(const TensorList& list, TensorTable& table, int sms, Launch&& launch) {
  int64_t used = 0;
  for (int64_t first = 0; first < list.count; first += kSlots) {
    const int64_t count = list.count - first < kSlots ? list.count - first : kSlots;
    const int64_t chunks = pack_table(list, first, count, table);
    if (chunks == 0) continue;  // only empty tensors in this slice
    const int64_t grid = pass_grid(chunks, sms);
    launch(first, grid, used);
    used += grid;
  }
  return used;
}

// Force-load each file's kernels (cudaFuncGetAttributes), defined next to them; see warm_up.
void load_multi_tensor_kernels();
void load_grad_kernels();
void load_prox_kernels();

}  // namespace fp::cuda
