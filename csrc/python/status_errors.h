// fp_status to the Python exception the bindings raise (the message is fp_last_error()).
#pragma once
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "fastpenalty/fastpenalty.h"

namespace fp_python {

namespace py = pybind11;

inline void raise_on_error(fp_status status) {
  if (status == FP_OK) return;
  const std::string message = fp_last_error();
  switch (status) {
    case FP_ERR_INVALID_ARGUMENT:
    case FP_ERR_UNSUPPORTED_ISA:
      throw py::value_error(message);
    case FP_ERR_UNSUPPORTED_DTYPE:
      throw py::type_error(message);
    case FP_ERR_OUT_OF_MEMORY:
      PyErr_SetString(PyExc_MemoryError, ("fastpenalty: " + message).c_str());
      throw py::error_already_set();
    default:
      throw std::runtime_error(message);
  }
}

}  // namespace fp_python
