// The NumPy fast path of fastpenalty._numpy_api: lists of plain, C-contiguous, aligned ndarrays of
// a known dtype and plain float factors are read here, in C++, and go straight to the C ABI with
// one overlap check (the C sweep). Anything else (subclasses such as masked arrays, strided or
// misaligned arrays, other dtypes, factor objects, invalid values, any failing call but running out
// of memory) returns None and the Python path handles it: conversion, and errors that name the
// offending argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fastpenalty/fastpenalty.h"

namespace fp_numpy {

namespace py = pybind11;

// np.ndarray and the NumPy dtype of every code, registered once by fastpenalty._numpy_api from
// fastpenalty._dtypes (so this file does not restate which dtype is which).
struct Registry {
  PyObject* ndarray = nullptr;
  PyObject* descr[FP_DTYPE_COUNT] = {};
};

inline Registry& registry() {
  static Registry r;
  return r;
}

inline void register_types(py::object ndarray, py::dict dtypes) {
  Registry& r = registry();
  r.ndarray = ndarray.release().ptr();  // kept for the life of the process
  for (auto item : dtypes) {
    const int code = item.first.cast<int>();
    if (code < 0 || code >= FP_DTYPE_COUNT) throw py::value_error("unknown dtype code");
    r.descr[code] = py::reinterpret_borrow<py::object>(item.second).release().ptr();
  }
}

struct Buffer {
  void* data;
  int64_t n;
  int32_t code;
  const py::detail::PyArray_Proxy* array;
};

inline bool read_array(PyObject* obj, bool writable, Buffer* out) {
  const Registry& r = registry();
  if (!r.ndarray || reinterpret_cast<PyObject*>(Py_TYPE(obj)) != r.ndarray) return false;
  const auto* a = py::detail::array_proxy(obj);
  using api = py::detail::npy_api;
  int need = api::NPY_ARRAY_C_CONTIGUOUS_ | api::NPY_ARRAY_ALIGNED_;
  if (writable) need |= api::NPY_ARRAY_WRITEABLE_;
  if ((a->flags & need) != need) return false;
  int32_t code = -1;
  for (int32_t c = 0; c < FP_DTYPE_COUNT; ++c)
    if (a->descr == r.descr[c]) code = c;
  if (code < 0) return false;
  int64_t n = 1;
  for (int d = 0; d < a->nd; ++d) n *= int64_t(a->dimensions[d]);
  *out = Buffer{a->data, n, code, a};
  return true;
}

inline bool same_shape(const Buffer& x, const Buffer& y) {
  if (x.array->nd != y.array->nd) return false;
  for (int d = 0; d < x.array->nd; ++d)
    if (x.array->dimensions[d] != y.array->dimensions[d]) return false;
  return true;
}

inline bool read_number(PyObject* obj, double* out) {
  if (PyFloat_CheckExact(obj)) {
    *out = PyFloat_AS_DOUBLE(obj);
  } else if (PyLong_CheckExact(obj)) {  // exact int: bool (an int subclass) goes the slow way
    *out = PyLong_AsDouble(obj);
    if (*out == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
  } else {
    return false;
  }
  return std::isfinite(*out) && *out >= 0.0;
}

// One factor for every tensor (a plain number), or a list/tuple of `count` plain numbers.
inline bool read_factors(PyObject* obj, size_t count, std::vector<double>* out) {
  out->clear();
  double v;
  if (read_number(obj, &v)) {
    out->push_back(v);
    return true;
  }
  if (!PyList_CheckExact(obj) && !PyTuple_CheckExact(obj)) return false;
  PyObject** items = PySequence_Fast_ITEMS(obj);
  if (size_t(PySequence_Fast_GET_SIZE(obj)) != count || count == 0) return false;
  out->resize(count);
  for (size_t i = 0; i < count; ++i)
    if (!read_number(items[i], &(*out)[i])) return false;
  return true;
}

// l1s and l2s broadcast to a common length (1, or one per tensor).
inline void match_factor_lengths(std::vector<double>& l1s, std::vector<double>& l2s) {
  if (l1s.size() == l2s.size()) return;
  if (l1s.size() == 1) l1s.assign(l2s.size(), l1s[0]);
  else l2s.assign(l1s.size(), l2s[0]);
}

// The value in the contract's result dtype (fp_result_dtype), as a Python float.
inline py::object result(double v, const std::vector<int32_t>& codes) {
  const bool fp64 = fp_result_dtype(int64_t(codes.size()), codes.data()) == FP_FLOAT64;
  return py::float_(fp64 ? v : double(static_cast<float>(v)));
}

struct Lists {
  std::vector<const void*> ws;
  std::vector<void*> gs;
  std::vector<int64_t> ns;
  std::vector<int32_t> codes;
  std::vector<double> l1s, l2s;
};

// The value, or None for the Python path to redo the call and name the bad argument. Running out of
// memory has no argument to name (and the Python path would need more memory): MemoryError here.
inline py::object finish(fp_status s, double out, const std::vector<int32_t>& codes) {
  if (s == FP_ERR_OUT_OF_MEMORY) {
    PyErr_SetString(PyExc_MemoryError, (std::string("fastpenalty: ") + fp_last_error()).c_str());
    throw py::error_already_set();
  }
  return s == FP_OK ? result(out, codes) : py::none();
}

// ws (and gs) must be lists the caller owns: their items stay alive while the GIL is released.
inline py::object value_many(py::list ws, py::handle l1, py::handle l2) {
  Lists a;
  const size_t count = ws.size();
  a.ws.reserve(count);
  a.ns.reserve(count);
  a.codes.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Buffer b;
    if (!read_array(PyList_GET_ITEM(ws.ptr(), i), false, &b)) return py::none();
    a.ws.push_back(b.data);
    a.ns.push_back(b.n);
    a.codes.push_back(b.code);
  }
  if (!read_factors(l1.ptr(), count, &a.l1s) || !read_factors(l2.ptr(), count, &a.l2s)) return py::none();
  match_factor_lengths(a.l1s, a.l2s);
  double out = 0.0;
  fp_status s;
  {
    py::gil_scoped_release release;
    s = fp_value_many(int64_t(count), a.ws.data(), a.ns.data(), a.codes.data(), a.l1s.data(), a.l2s.data(),
                      int64_t(a.l1s.size()), &out);
  }
  return finish(s, out, a.codes);
}

inline py::object accumulate_many(py::list ws, py::list gs, py::handle l1, py::handle l2) {
  Lists a;
  const size_t count = ws.size();
  if (gs.size() != count) return py::none();
  a.ws.reserve(count);
  a.gs.reserve(count);
  a.ns.reserve(count);
  a.codes.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    Buffer w, g;
    if (!read_array(PyList_GET_ITEM(ws.ptr(), i), false, &w) || !read_array(PyList_GET_ITEM(gs.ptr(), i), true, &g) ||
        w.code != g.code || !same_shape(w, g))
      return py::none();
    a.ws.push_back(w.data);
    a.gs.push_back(g.data);
    a.ns.push_back(w.n);
    a.codes.push_back(w.code);
  }
  if (!read_factors(l1.ptr(), count, &a.l1s) || !read_factors(l2.ptr(), count, &a.l2s)) return py::none();
  match_factor_lengths(a.l1s, a.l2s);
  double out = 0.0;
  fp_status s;
  {
    py::gil_scoped_release release;
    s = fp_accumulate_many(int64_t(count), a.ws.data(), a.gs.data(), a.ns.data(), a.codes.data(), a.l1s.data(),
                           a.l2s.data(), int64_t(a.l1s.size()), &out);
  }
  return finish(s, out, a.codes);
}

}  // namespace fp_numpy
