// fastpenalty._core: the C ABI over raw pointers (Python ints), for NumPy, torch and anything else
// that can hand over a data pointer. The GIL is released around every kernel call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fastpenalty/fastpenalty_experimental.h"
#include "numpy_fast_path.h"
#include "prox_bindings.h"
#include "status_errors.h"
#include "torch_plan.h"

namespace py = pybind11;

namespace {

using fp_python::raise_on_error;

template <class F>
void call_without_gil(F&& f) {
  fp_status status;
  {
    py::gil_scoped_release release;
    status = f();
  }
  raise_on_error(status);
}

template <class T>
std::vector<T*> as_pointers(const std::vector<uintptr_t>& addresses) {
  std::vector<T*> out(addresses.size());
  for (size_t i = 0; i < addresses.size(); ++i) out[i] = reinterpret_cast<T*>(addresses[i]);
  return out;
}

struct ManyArgs {
  std::vector<const void*> ws;
  std::vector<void*> gs;
  std::vector<int64_t> ns;
  std::vector<int32_t> dtypes;
  std::vector<double> l1s, l2s;
};

void check_lengths(const ManyArgs& a, bool with_g) {
  const size_t n = a.ws.size();
  if (a.ns.size() != n || a.dtypes.size() != n || (with_g && a.gs.size() != n))
    throw py::value_error("pointer, size and dtype lists must have the same length");
  if (a.l1s.size() != a.l2s.size()) throw py::value_error("l1s and l2s must have the same length");
  if (n > 0 && a.l1s.size() != 1 && a.l1s.size() != n)
    throw py::value_error("factor lists must have one entry or one per tensor");
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastpenalty compiled core: fused penalty kernels over raw buffers";
  m.attr("CHUNK") = FP_CHUNK;  // experimental
  m.attr("ABI_VERSION") = fp_abi_version();
  m.attr("VERSION") = std::string(fp_version());
  m.attr("HEADER_VERSION") = py::make_tuple(FP_VERSION_MAJOR, FP_VERSION_MINOR, FP_VERSION_PATCH);
  m.attr("FLOAT32") = int(FP_FLOAT32);
  m.attr("FLOAT64") = int(FP_FLOAT64);
  m.attr("FLOAT16") = int(FP_FLOAT16);
  m.attr("BFLOAT16") = int(FP_BFLOAT16);
  // The dtype table of the C ABI, from which fastpenalty._dtypes is built: (code, name, itemsize).
  py::list dtypes;
  for (int32_t code = 0; code < FP_DTYPE_COUNT; ++code)
    dtypes.append(py::make_tuple(code, std::string(fp_dtype_name(code)), fp_dtype_itemsize(code)));
  m.attr("DTYPES") = py::tuple(dtypes);
  m.def(
      "result_dtype",
      [](const std::vector<int32_t>& codes) {
        const int32_t r = fp_result_dtype(int64_t(codes.size()), codes.data());
        if (r < 0) throw py::type_error("unknown dtype code in " + py::repr(py::cast(codes)).cast<std::string>());
        return r;
      },
      py::arg("codes"), "FLOAT64 when every code is FLOAT64 (and there is one), else FLOAT32.");
  m.def("status_string", [](int status) { return std::string(fp_status_string(fp_status(status))); },
        py::arg("status"));

  m.def(
      "value",
      [](uintptr_t w, int64_t n, int32_t dtype, double l1, double l2) {
        double out = 0.0;
        call_without_gil([&] { return fp_value(reinterpret_cast<const void*>(w), n, dtype, l1, l2, &out); });
        return out;
      },
      py::arg("w_ptr"), py::arg("n"), py::arg("dtype"), py::arg("l1"), py::arg("l2"));

  m.def(
      "grad",
      [](uintptr_t w, uintptr_t out, int64_t n, int32_t dtype, double l1, double l2) {
        call_without_gil([&] {
          return fp_grad(reinterpret_cast<const void*>(w), reinterpret_cast<void*>(out), n, dtype, l1, l2);
        });
      },
      py::arg("w_ptr"), py::arg("out_ptr"), py::arg("n"), py::arg("dtype"), py::arg("l1"), py::arg("l2"));

  m.def(
      "accumulate",
      [](uintptr_t w, uintptr_t g, int64_t n, int32_t dtype, double l1, double l2) {
        double out = 0.0;
        call_without_gil([&] {
          return fp_accumulate(reinterpret_cast<const void*>(w), reinterpret_cast<void*>(g), n, dtype, l1, l2, &out);
        });
        return out;
      },
      py::arg("w_ptr"), py::arg("g_ptr"), py::arg("n"), py::arg("dtype"), py::arg("l1"), py::arg("l2"));

  m.def(
      "value_many",
      [](const std::vector<uintptr_t>& ws, std::vector<int64_t> ns, std::vector<int32_t> dtypes,
         std::vector<double> l1s, std::vector<double> l2s) {
        ManyArgs a{as_pointers<const void>(ws), {}, std::move(ns), std::move(dtypes), std::move(l1s), std::move(l2s)};
        check_lengths(a, false);
        double out = 0.0;
        call_without_gil([&] {
          return fp_value_many(int64_t(a.ws.size()), a.ws.data(), a.ns.data(), a.dtypes.data(), a.l1s.data(),
                               a.l2s.data(), int64_t(a.l1s.size()), &out);
        });
        return out;
      },
      py::arg("w_ptrs"), py::arg("ns"), py::arg("dtypes"), py::arg("l1s"), py::arg("l2s"));

  m.def(
      "sums_many",
      [](const std::vector<uintptr_t>& ws, std::vector<int64_t> ns, std::vector<int32_t> dtypes) {
        ManyArgs a{as_pointers<const void>(ws), {}, std::move(ns), std::move(dtypes), {1.0}, {0.0}};
        check_lengths(a, false);
        std::vector<double> abs_sums(a.ws.size()), sq_sums(a.ws.size());
        call_without_gil([&] {
          return fp_sums_many(int64_t(a.ws.size()), a.ws.data(), a.ns.data(), a.dtypes.data(), abs_sums.data(),
                              sq_sums.data());
        });
        return py::make_tuple(abs_sums, sq_sums);
      },
      py::arg("w_ptrs"), py::arg("ns"), py::arg("dtypes"),
      "Per tensor: (list of sum |w|, list of sum w^2), in one read of every tensor.");

  m.def(
      "accumulate_many",
      [](const std::vector<uintptr_t>& ws, const std::vector<uintptr_t>& gs, std::vector<int64_t> ns,
         std::vector<int32_t> dtypes, std::vector<double> l1s, std::vector<double> l2s) {
        ManyArgs a{as_pointers<const void>(ws), as_pointers<void>(gs), std::move(ns), std::move(dtypes),
                   std::move(l1s), std::move(l2s)};
        check_lengths(a, true);
        double out = 0.0;
        call_without_gil([&] {
          return fp_accumulate_many(int64_t(a.ws.size()), a.ws.data(), a.gs.data(), a.ns.data(), a.dtypes.data(),
                                    a.l1s.data(), a.l2s.data(), int64_t(a.l1s.size()), &out);
        });
        return out;
      },
      py::arg("w_ptrs"), py::arg("g_ptrs"), py::arg("ns"), py::arg("dtypes"), py::arg("l1s"), py::arg("l2s"));

  m.def(
      "grad_many",
      [](const std::vector<uintptr_t>& ws, const std::vector<uintptr_t>& outs, std::vector<int64_t> ns,
         std::vector<int32_t> dtypes, std::vector<double> l1s, std::vector<double> l2s) {
        ManyArgs a{as_pointers<const void>(ws), as_pointers<void>(outs), std::move(ns), std::move(dtypes),
                   std::move(l1s), std::move(l2s)};
        check_lengths(a, true);
        call_without_gil([&] {
          return fp_grad_many(int64_t(a.ws.size()), a.ws.data(), a.gs.data(), a.ns.data(), a.dtypes.data(),
                              a.l1s.data(), a.l2s.data(), int64_t(a.l1s.size()));
        });
      },
      py::arg("w_ptrs"), py::arg("out_ptrs"), py::arg("ns"), py::arg("dtypes"), py::arg("l1s"), py::arg("l2s"));

  m.def(
      "probe_add",
      [](uintptr_t w, uintptr_t g, int64_t n, int32_t dtype) {
        call_without_gil([&] {
          return fp_probe_add(reinterpret_cast<const void*>(w), reinterpret_cast<void*>(g), n, dtype);
        });
      },
      py::arg("w_ptr"), py::arg("g_ptr"), py::arg("n"), py::arg("dtype"));

  m.def(
      "probe_sum",
      [](uintptr_t w, int64_t n, int32_t dtype) {
        double out = 0.0;
        call_without_gil([&] { return fp_probe_sum(reinterpret_cast<const void*>(w), n, dtype, &out); });
        return out;
      },
      py::arg("w_ptr"), py::arg("n"), py::arg("dtype"));

  fp_prox_binding::add_to(m);
  m.def("fail_next_allocations", &fp_experimental_fail_next_allocations, py::arg("n"),
        "Test hook (experimental): the chunk-table allocation of the next n calls fails (MemoryError).");
  m.def("use_openmp", [](bool enabled) { fp_experimental_use_openmp(enabled ? 1 : 0); }, py::arg("enabled"),
        "Experimental: whether multi-part calls may run on the process's OpenMP team (torch's libgomp).");
  m.def("last_pool", [] { return std::string(fp_experimental_last_pool()); },
        "Experimental: how the last multi-part call ran its parts: openmp, threads, caller or none.");
  m.attr("MAX_THREADS") = FP_MAX_THREADS;
  if (const std::string warning = fp_config_warning(); !warning.empty()) {
    if (PyErr_WarnEx(PyExc_RuntimeWarning, ("fastpenalty: " + warning).c_str(), 1) != 0) throw py::error_already_set();
  }
  m.def("config_warning", [] { return std::string(fp_config_warning()); });
  m.def("register_numpy_types", &fp_numpy::register_types, py::arg("ndarray"), py::arg("dtypes"),
        "np.ndarray and {code: np.dtype} for the NumPy fast path (fastpenalty._numpy_api calls it).");
  m.def("numpy_value_many", &fp_numpy::value_many, py::arg("ws"), py::arg("l1"), py::arg("l2"),
        "The value over a list of plain NumPy arrays, or None when the Python path must handle them.");
  m.def("numpy_accumulate_many", &fp_numpy::accumulate_many, py::arg("ws"), py::arg("gs"), py::arg("l1"),
        py::arg("l2"), "accumulate_many_ over lists of plain NumPy arrays, or None (see numpy_value_many).");
  fp_torch::register_bindings(m);
  m.def("as_float32", [](double v) { return double(static_cast<float>(v)); }, py::arg("value"),
        "A double rounded to float32 (inf beyond its range), without NumPy's overflow warning.");
  m.def("set_num_threads", [](int n) { raise_on_error(fp_set_num_threads(n)); }, py::arg("n"));
  m.def("get_num_threads", &fp_get_num_threads);
  m.def(
      "set_isa",
      [](const std::string& name) {
        std::string previous = fp_get_isa();
        raise_on_error(fp_set_isa(name.c_str()));
        return previous;
      },
      py::arg("name"));
  m.def("get_isa", [] { return std::string(fp_get_isa()); });
  m.def("best_isa", [] { return std::string(fp_best_isa()); });
  m.def("available_isas", [] {
    std::vector<std::string> out;
    std::string list = fp_available_isas();
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      out.push_back(list.substr(start, comma - start));
      start = comma + 1;
    }
    return out;
  });
}
