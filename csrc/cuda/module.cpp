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

  m.attr("CHUNK") = fc::kChunk;
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

  m.def("table_bytes", &fc::table_bytes, py::arg("num_tensors"), "bytes of the tensor table for that many tensors");
  m.def("fill_table", &fc::fill_table, py::arg("host_ptr"), py::arg("capacity"), py::arg("w_ptrs"),
        py::arg("g_ptrs"), py::arg("ns"), py::arg("dtypes"),
        "validate the tensors and write their table into host memory; returns the total chunk count "
        "(g_ptrs empty for a value-only table)",
        py::call_guard<py::gil_scoped_release>());
  m.def("grid_blocks", &fc::grid_blocks, py::arg("total_chunks"), py::arg("device"),
        "blocks of the multi-tensor pass (fixed for a device and a chunk count)");
  m.def("scratch_bytes", &fc::scratch_bytes, py::arg("num_blocks"), "bytes of scratch the pass needs");

  m.def(
      "multi_tensor",
      [](int mode, uint64_t table, int64_t table_capacity, int64_t num_tensors, int64_t total_chunks,
         uint64_t l1s, int64_t l1_count, uint64_t l2s, int64_t l2_count, uint64_t scratch, int64_t scratch_capacity,
         int64_t num_blocks, uint64_t out, bool out_f64, int device, uint64_t stream) {
        fc::MultiTensorLaunch p;
        p.mode = mode;
        p.table = table;
        p.table_capacity = table_capacity;
        p.num_tensors = num_tensors;
        p.total_chunks = total_chunks;
        p.l1s = l1s;
        p.l1_count = l1_count;
        p.l2s = l2s;
        p.l2_count = l2_count;
        p.scratch = scratch;
        p.scratch_capacity = scratch_capacity;
        p.num_blocks = num_blocks;
        p.out = out;
        p.out_f64 = out_f64;
        p.device = device;
        p.stream = stream;
        fc::launch_multi_tensor(p);
      },
      py::arg("mode"), py::arg("table"), py::arg("table_capacity"), py::arg("num_tensors"),
      py::arg("total_chunks"), py::arg("l1s"), py::arg("l1_count"), py::arg("l2s"), py::arg("l2_count"),
      py::arg("scratch"), py::arg("scratch_capacity"), py::arg("num_blocks"), py::arg("out"), py::arg("out_f64"),
      py::arg("device"), py::arg("stream"),
      "over a device tensor table: mode 0 value, 1 g += grad(w) and value, 2 g = grad(w) (no value); the "
      "value goes to out (float64 when out_f64, else float32). One or two launches, no host sync.",
      py::call_guard<py::gil_scoped_release>());

  m.def("grad", &fc::launch_grad, py::arg("w"), py::arg("out"), py::arg("n"), py::arg("dtype"), py::arg("l1"),
        py::arg("l2"), py::arg("device"), py::arg("stream"),
        "out = grad(w) for n >= 1 elements; l1/l2 point at one float64 each on the device",
        py::call_guard<py::gil_scoped_release>());
}
