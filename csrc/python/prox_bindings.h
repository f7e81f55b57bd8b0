// fastpenalty._core's proximal step: prox_many / prox over raw pointers, and numpy_prox_many, the
// NumPy fast path (cpu/prox_ops.cpp does the work). Factor lists hold one entry per tensor or one
// broadcast to all; argument errors raise ValueError/TypeError before anything is written, and
// the GIL is released around the kernels.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fastpenalty/fastpenalty.h"
#include "numpy_fast_path.h"
#include "status_errors.h"

namespace fp_prox_binding {

namespace py = pybind11;

using fp_python::raise_on_error;

// A factor list of 1 entry repeated to `count` (the C ABI takes one per tensor); false if its
// length is neither 1 nor count.
inline bool broadcast(std::vector<double>& f, size_t count) {
  if (f.size() == count) return true;
  if (f.size() != 1) return false;
  f.assign(count, f[0]);
  return true;
}

inline py::tuple prox_many(const std::vector<uintptr_t>& addresses, std::vector<int64_t> ns,
                           std::vector<int32_t> dtypes, std::vector<double> lrs, std::vector<double> l1s,
                           std::vector<double> l2s) {
  const size_t count = addresses.size();
  if (ns.size() != count || dtypes.size() != count)
    throw py::value_error("pointer, size and dtype lists must have the same length");
  if (count > 0 && !(broadcast(lrs, count) && broadcast(l1s, count) && broadcast(l2s, count)))
    throw py::value_error("factor lists must have one entry or one per tensor");
  std::vector<void*> ws(count);
  for (size_t i = 0; i < count; ++i) ws[i] = reinterpret_cast<void*>(addresses[i]);
  double value = 0.0;
  int64_t zeros = 0;
  fp_status status;
  {
    py::gil_scoped_release release;
    status = fp_prox_many(int64_t(count), ws.data(), ns.data(), dtypes.data(), lrs.data(), l1s.data(), l2s.data(),
                          &value, &zeros);
  }
  raise_on_error(status);
  return py::make_tuple(value, zeros);
}

inline py::tuple prox(uintptr_t w, int64_t n, int32_t dtype, double lr, double l1, double l2) {
  void* p = reinterpret_cast<void*>(w);
  double value = 0.0;
  int64_t zeros = 0;
  fp_status status;
  {
    py::gil_scoped_release release;
    status = fp_prox(p, n, dtype, lr, l1, l2, &value, &zeros);
  }
  raise_on_error(status);
  return py::make_tuple(value, zeros);
}

// The NumPy fast path, under numpy_fast_path.h's rules: a list the caller owns of exact, writable,
// C-contiguous, aligned ndarrays of a registered dtype, and plain float/int factors (one, or a
// list/tuple of one per tensor). (value rounded to the result dtype, zeros), or None for anything
// else and for any failing call (nothing is written then): the Python path raises the error.
inline py::object numpy_prox_many(py::list ws, py::handle lr, py::handle l1, py::handle l2) {
  const size_t count = ws.size();
  std::vector<void*> data;
  std::vector<int64_t> ns;
  std::vector<int32_t> codes;
  data.reserve(count);
  ns.reserve(count);
  codes.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    fp_numpy::Buffer b;
    if (!fp_numpy::read_array(PyList_GET_ITEM(ws.ptr(), i), true, &b)) return py::none();
    data.push_back(b.data);
    ns.push_back(b.n);
    codes.push_back(b.code);
  }
  std::vector<double> lrs, l1s, l2s;
  if (!fp_numpy::read_factors(lr.ptr(), count, &lrs) || !fp_numpy::read_factors(l1.ptr(), count, &l1s) ||
      !fp_numpy::read_factors(l2.ptr(), count, &l2s))
    return py::none();
  if (count > 0 && !(broadcast(lrs, count) && broadcast(l1s, count) && broadcast(l2s, count))) return py::none();
  double value = 0.0;
  int64_t zeros = 0;
  fp_status status;
  {
    py::gil_scoped_release release;
    status = fp_prox_many(int64_t(count), data.data(), ns.data(), codes.data(), lrs.data(), l1s.data(), l2s.data(),
                          &value, &zeros);
  }
  if (status == FP_ERR_OUT_OF_MEMORY) raise_on_error(status);  // as the other fast paths: MemoryError
  if (status != FP_OK) return py::none();
  return py::make_tuple(fp_numpy::result(value, codes), zeros);
}

inline void add_to(py::module_& m) {
  m.def("prox_many", &prox_many, py::arg("w_ptrs"), py::arg("ns"), py::arg("dtypes"), py::arg("lrs"),
        py::arg("l1s"), py::arg("l2s"),
        "w = prox(w) in place for every tensor; (value of the new weights, count of exact zeros).");
  m.def("prox", &prox, py::arg("w_ptr"), py::arg("n"), py::arg("dtype"), py::arg("lr"), py::arg("l1"),
        py::arg("l2"), "prox_many for one tensor.");
  m.def("numpy_prox_many", &numpy_prox_many, py::arg("ws"), py::arg("lr"), py::arg("l1"), py::arg("l2"),
        "prox_many over a list of plain NumPy arrays: (value, zeros), or None (see numpy_value_many).");
}

}  // namespace fp_prox_binding
