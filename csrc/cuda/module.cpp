// fastpenalty._cuda: pybind11 bindings over the CUDA launchers (api.h). Addresses and streams are
// Python ints (tensor.data_ptr(), torch.cuda.current_stream().cuda_stream); the caller owns every
// buffer. Bad arguments raise ValueError before any launch; CUDA errors raise RuntimeError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cuda/api.h"
#include "cuda/tensor_table.h"

namespace py = pybind11;
namespace fc = fp::cuda;

#ifndef FASTPENALTY_CUDA_ARCHITECTURES_STRING
#define FASTPENALTY_CUDA_ARCHITECTURES_STRING ""
#endif

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "fastpenalty CUDA kernels over raw device pointers (used by fastpenalty._cuda_ops)";

  m.attr("CHUNK_BYTES") = fc::kChunkBytes;
  m.attr("SLOTS") = fc::kSlots;
  m.attr("MODE_VALUE") = 0;
  m.attr("MODE_ACCUMULATE") = 1;
  m.attr("MODE_GRAD") = 2;
  m.attr("ARCHITECTURES") = FASTPENALTY_CUDA_ARCHITECTURES_STRING;

  m.def("device_count", &fc::device_count, "CUDA devices visible to the module's runtime (0 without driver or GPU)");
  m.def("runtime_version", &fc::runtime_version, "version of the statically linked CUDA runtime, e.g. 13000");
  m.def("driver_version", &fc::driver_version, "CUDA version the driver supports, 0 without a driver");
  m.def(
      "available", [] { return fc::device_count() > 0; },
      "True when a CUDA driver and at least one device are usable; never raises");
  m.def("device_query_error", &fc::device_query_error, "why no device is usable ('' when the query succeeds)");
  m.def("warm_up", &fc::warm_up, py::arg("device"), "load every kernel onto the device ahead of the first launch",
        py::call_guard<py::gil_scoped_release>());

  m.def("scratch_bytes", &fc::scratch_bytes, py::arg("num_tensors"), py::arg("device"),
        "bytes of device scratch multi_tensor needs at most for a list of that many tensors");

  m.def(
      "multi_tensor",
      [](int mode, std::vector<uint64_t> w, std::vector<uint64_t> g, std::vector<int64_t> n,
         std::vector<int32_t> dtype, uint64_t l1s, int64_t l1_count, uint64_t l2s, int64_t l2_count, uint64_t scratch,
         int64_t scratch_capacity, uint64_t out, bool out_f64, int device, uint64_t stream) {
        fc::MultiTensorLaunch p{mode, std::move(w), std::move(g), std::move(n), std::move(dtype), l1s, l1_count,
                                l2s, l2_count, scratch, scratch_capacity, out, out_f64, device, stream};
        py::gil_scoped_release release;
        fc::launch_multi_tensor(p);
      },
      py::arg("mode"), py::arg("w"), py::arg("g"), py::arg("n"), py::arg("dtype"), py::arg("l1s"),
      py::arg("l1_count"), py::arg("l2s"), py::arg("l2_count"), py::arg("scratch"), py::arg("scratch_capacity"),
      py::arg("out"), py::arg("out_f64"), py::arg("device"), py::arg("stream"),
      "over a list of device tensors (addresses, sizes, dtype codes; g empty in mode 0): mode 0 value, 1 "
      "g += grad(w) and value, 2 g = grad(w) (no value); the value goes to out (float64 when out_f64, else "
      "float32). One launch per SLOTS tensors plus one final sum, tables by value, no host sync.");

  m.def("prox_scratch_bytes", &fc::prox_scratch_bytes, py::arg("num_tensors"), py::arg("device"),
        "bytes of device scratch prox needs for a list of that many tensors");
  m.def(
      "prox",
      [](std::vector<uint64_t> w, std::vector<int64_t> n, std::vector<int32_t> dtype, uint64_t lrs, int64_t lr_count,
         uint64_t l1s, int64_t l1_count, uint64_t l2s, int64_t l2_count, uint64_t scratch, int64_t scratch_capacity,
         uint64_t out, bool out_f64, uint64_t zeros_out, int device, uint64_t stream) {
        fc::ProxLaunch p{std::move(w), std::move(n), std::move(dtype), lrs, lr_count, l1s, l1_count, l2s, l2_count,
                         scratch, scratch_capacity, out, out_f64, zeros_out, device, stream};
        py::gil_scoped_release release;
        fc::launch_prox(p);
      },
      py::arg("w"), py::arg("n"), py::arg("dtype"), py::arg("lrs"), py::arg("lr_count"), py::arg("l1s"),
      py::arg("l1_count"), py::arg("l2s"), py::arg("l2_count"), py::arg("scratch"), py::arg("scratch_capacity"),
      py::arg("out"), py::arg("out_f64"), py::arg("zeros_out"), py::arg("device"), py::arg("stream"),
      "w = prox(w) in place over a list of device tensors that share no memory; the value of the new weights "
      "to out (float64 when out_f64, else float32) and their count of exact zeros to zeros_out (int64). A "
      "factor that is not valid: nothing written, out NaN, zeros_out -1. No host sync.");

  m.def("grad", &fc::launch_grad, py::arg("w"), py::arg("out"), py::arg("n"), py::arg("dtype"), py::arg("l1"),
        py::arg("l2"), py::arg("device"), py::arg("stream"),
        "out = grad(w) for n >= 1 elements; l1/l2 point at one float64 each on the device",
        py::call_guard<py::gil_scoped_release>());
}
