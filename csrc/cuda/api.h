// The host interface of the CUDA kernels, as seen by the pybind11 module (module.cpp, compiled by
// the host compiler): plain C++ types only, addresses as integers. Invalid arguments throw
// std::invalid_argument before anything is launched or written; CUDA errors throw
// std::runtime_error carrying cudaGetErrorString.
#pragma once
#include <stdint.h>

#include <string>
#include <vector>

namespace fp::cuda {

// Runtime facts; none of them throws, and all work without a driver or a GPU.
int device_count();     // 0 when there is no usable driver or device
int runtime_version();  // of the CUDA runtime linked into the module, e.g. 13000
int driver_version();   // 0 when there is no driver
std::string device_query_error();  // why device_count() is 0 ("" when the query succeeded)

// Loads every kernel onto `device` (CUDA lazy loading would otherwise do it at the first launch).
void warm_up(int device);

// Scratch bytes that launch_multi_tensor needs at most for a list of num_tensors on `device`
// (one double per block of each of its launches).
int64_t scratch_bytes(int64_t num_tensors, int device);

struct MultiTensorLaunch {
  int mode;                // 0: value; 1: g += grad(w) and value; 2: g = grad(w) (g are outputs, no value)
  std::vector<uint64_t> w; // device addresses, one per tensor
  std::vector<uint64_t> g; // empty in mode 0
  std::vector<int64_t> n;
  std::vector<int32_t> dtype;
  uint64_t l1s;            // float64 device array, l1_count entries (1 = broadcast, or one per tensor)
  int64_t l1_count;
  uint64_t l2s;
  int64_t l2_count;
  uint64_t scratch;        // device buffer of scratch_capacity bytes (unused in mode 2)
  int64_t scratch_capacity;
  uint64_t out;            // device scalar: double when out_f64, else float (unused in mode 2)
  bool out_f64;
  int device;
  uint64_t stream;         // cudaStream_t of `device`
};
// On `stream`: one multi-tensor launch per slice of kSlots tensors (the table passed by value),
// then (modes 0 and 1) one fixed-order sum of all the block partials into out.
void launch_multi_tensor(const MultiTensorLaunch& p);

// The proximal step in place (common/penalty_math.h) over a list of device tensors, which must not
// share memory: lrs/l1s/l2s are float64 device arrays of 1 or one entry per tensor. out receives
// the value of the new weights (as the value pass would compute it from them, bit for bit),
// zeros_out (int64) their count of exact zeros. A factor that is not valid (negative, not finite,
// lr*l1 or 2*lr*l2 not finite) cannot be seen on the host: then nothing is written, out is NaN and
// zeros_out -1. scratch: prox_scratch_bytes(w.size(), device) bytes.
struct ProxLaunch {
  std::vector<uint64_t> w;
  std::vector<int64_t> n;
  std::vector<int32_t> dtype;
  uint64_t lrs;
  int64_t lr_count;
  uint64_t l1s;
  int64_t l1_count;
  uint64_t l2s;
  int64_t l2_count;
  uint64_t scratch;
  int64_t scratch_capacity;
  uint64_t out;        // double when out_f64, else float
  bool out_f64;
  uint64_t zeros_out;  // int64
  int device;
  uint64_t stream;
};
int64_t prox_scratch_bytes(int64_t num_tensors, int device);
void launch_prox(const ProxLaunch& p);

// out = grad(w) for one tensor (one launch); l1/l2 point at one float64 each on the device.
void launch_grad(uint64_t w, uint64_t out, int64_t n, int32_t dtype, uint64_t l1, uint64_t l2, int device,
                 uint64_t stream);

}  // namespace fp::cuda
