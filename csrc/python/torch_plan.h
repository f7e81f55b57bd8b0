// The eager CPU fast path of fastpenalty.torch, in C++: torch tensors are read through the Python C
// API (the descriptors of torch.Tensor registered once from Python; no libtorch is linked), and a
// Plan keeps the flat pointer/size/dtype arrays of the last call. On the next call each tensor costs
// an identity check against a weak reference plus a re-read of what can change on the same object
// (address, element count, dtype, contiguity, negative bit; for a target also requires_grad). A new
// or changed object gets the full "plain" check (exact Tensor/Parameter type, CPU, strided, not
// nested; a target also: same dtype and shape as its weight, not an inference tensor). Anything that
// is not plain, a factor that is not a plain number or float64 CPU tensor, any invalid value and any
// failing core call answer None: fastpenalty.torch then takes its Python path, which checks in full
// and raises the errors that name the argument. Nothing is written before every check passed.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fastpenalty/fastpenalty.h"

namespace fp_torch {

namespace py = pybind11;

// torch's types, dtypes and the descriptors of the attributes read here (fastpenalty.torch._cpu
// registers them after checking that nn.Parameter overrides none of them).
struct Torch {
  PyObject* tensor = nullptr;
  PyObject* parameter = nullptr;
  PyObject* dtypes[FP_DTYPE_COUNT] = {};
  PyObject* strided = nullptr;
  PyObject* increment_version = nullptr;  // torch._C._increment_version(list of tensors)
  // method descriptors, called with the tensor as their only argument
  PyObject *data_ptr = nullptr, *numel = nullptr, *is_contiguous = nullptr, *is_neg = nullptr,
           *is_inference = nullptr;
  // getset descriptors
  PyObject *grad = nullptr, *dtype = nullptr, *layout = nullptr, *is_cpu = nullptr, *is_nested = nullptr,
           *requires_grad = nullptr, *shape = nullptr, *version = nullptr, *cdata = nullptr;
};

inline Torch& api() {
  static Torch t;
  return t;
}

inline bool registered() { return api().increment_version != nullptr; }

inline PyObject* keep(py::handle h) { return py::reinterpret_borrow<py::object>(h).release().ptr(); }

inline void register_types(py::handle tensor, py::handle parameter, py::dict dtypes, py::handle strided,
                           py::dict descriptors, py::handle increment_version) {
  Torch t;
  t.tensor = keep(tensor);
  t.parameter = keep(parameter);
  for (auto item : dtypes) {
    const int code = item.first.cast<int>();
    if (code < 0 || code >= FP_DTYPE_COUNT) throw py::value_error("unknown dtype code");
    t.dtypes[code] = keep(item.second);
  }
  t.strided = keep(strided);
  const auto method = [&](const char* name) {
    py::handle d = descriptors[name];
    if (!PyObject_TypeCheck(d.ptr(), &PyMethodDescr_Type)) throw py::type_error(std::string(name) + ": not a method descriptor");
    return keep(d);
  };
  const auto getset = [&](const char* name) {
    py::handle d = descriptors[name];
    if (!PyObject_TypeCheck(d.ptr(), &PyGetSetDescr_Type)) throw py::type_error(std::string(name) + ": not a getset descriptor");
    return keep(d);
  };
  t.data_ptr = method("data_ptr");
  t.numel = method("numel");
  t.is_contiguous = method("is_contiguous");
  t.is_neg = method("is_neg");
  t.is_inference = method("is_inference");
  t.grad = getset("grad");
  t.dtype = getset("dtype");
  t.layout = getset("layout");
  t.is_cpu = getset("is_cpu");
  t.is_nested = getset("is_nested");
  t.requires_grad = getset("requires_grad");
  t.shape = getset("shape");
  t.version = getset("_version");
  t.cdata = getset("_cdata");
  t.increment_version = keep(increment_version);  // last: registered() means all of it is there
  api() = t;
}

// ------------------------------------------------------------------------------------ reading

// A read that raises makes the tensor not plain; the error is cleared (the Python path names it).
inline PyObject* call(PyObject* method, PyObject* self) {
  PyObject* args[1] = {self};
  PyObject* r = PyObject_Vectorcall(method, args, 1, nullptr);
  if (!r) PyErr_Clear();
  return r;
}

inline PyObject* get(PyObject* getset, PyObject* self) {
  PyObject* r = Py_TYPE(getset)->tp_descr_get(getset, self, reinterpret_cast<PyObject*>(Py_TYPE(self)));
  if (!r) PyErr_Clear();
  return r;
}

// 1 / 0 for True / False, -1 when the read failed or gave something else.
inline int truth(PyObject* r) {
  if (!r) return -1;
  const int v = r == Py_True ? 1 : (r == Py_False ? 0 : -1);
  Py_DECREF(r);
  return v;
}

inline bool read_int(PyObject* method, PyObject* self, int64_t* out) {
  PyObject* r = call(method, self);
  if (!r) return false;
  *out = PyLong_AsLongLong(r);
  Py_DECREF(r);
  if (*out == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  return true;
}

inline int32_t dtype_code(PyObject* t) {
  PyObject* d = get(api().dtype, t);
  if (!d) return -1;
  int32_t code = -1;
  for (int32_t c = 0; c < FP_DTYPE_COUNT; ++c)
    if (d == api().dtypes[c]) code = c;
  Py_DECREF(d);
  return code;
}

// What is re-read on the same tensor object at every call: what p.data = ..., set_(), t_() or
// resize_() can change. False when the tensor is not contiguous. (Each read through torch's bindings
// costs tens of ns, so the negative bit, which only a private `.data = t._neg_view()` could set on an
// unchanged address, is read by the full check only.)
struct Facts {
  int64_t ptr = 0;
  int64_t n = 0;
  int32_t code = -1;
  bool operator==(const Facts& o) const { return ptr == o.ptr && n == o.n && code == o.code; }
};

inline bool read_facts(PyObject* t, Facts* f) {
  const Torch& a = api();
  if (truth(call(a.is_contiguous, t)) != 1) return false;
  f->code = dtype_code(t);
  return f->code >= 0 && read_int(a.data_ptr, t, &f->ptr) && read_int(a.numel, t, &f->n);
}

// ------------------------------------------------------------------------------ direct reads

// Each read above goes through torch's Python bindings (tens of ns: argument parsing, a new Python
// int). A tensor object already checked is read instead through libtorch's stable C shim
// (aoti_torch_get_data_ptr & co., exported by libtorch_cpu, which torch has loaded): the shim takes
// an at::Tensor*, and a torch.Tensor object holds its at::Tensor right after its PyObject header.
// That layout is not a promise, so it is used for an object only after its full check saw the
// pointer stored there equal the object's own `_cdata` (its TensorImpl address), and only when
// register_direct found the shim and saw it agree with the Python reads on probe tensors.
struct Shim {
  int32_t (*data_ptr)(void*, void**) = nullptr;
  int32_t (*numel)(void*, int64_t*) = nullptr;
  int32_t (*dtype)(void*, int32_t*) = nullptr;
  int32_t (*contiguous)(void*, bool*) = nullptr;
  int32_t (*device_type)(void*, int32_t*) = nullptr;
  int32_t cpu = -1;                       // the shim's device type code of the CPU
  int32_t dtype_of[FP_DTYPE_COUNT] = {};  // the shim's dtype code for each FP_* code
  bool on = false;
};

inline Shim& shim() {
  static Shim s;
  return s;
}

inline void* tensor_slot(PyObject* t) { return reinterpret_cast<char*>(t) + sizeof(PyObject); }

// Whether the at::Tensor stored after t's header is t's own (so that the shim may be handed it).
inline bool slot_is_own(PyObject* t) {
  if (size_t(Py_TYPE(t)->tp_basicsize) < sizeof(PyObject) + sizeof(void*)) return false;
  PyObject* r = get(api().cdata, t);
  if (!r) return false;
  const unsigned long long impl = PyLong_AsUnsignedLongLong(r);
  Py_DECREF(r);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  uintptr_t stored;
  std::memcpy(&stored, tensor_slot(t), sizeof stored);
  return impl != 0 && stored == uintptr_t(impl);
}

inline bool direct_facts(PyObject* t, Facts* f) {
  const Shim& s = shim();
  void* h = tensor_slot(t);
  bool contiguous = false;
  void* ptr = nullptr;
  int32_t dtype = -1, device = -1;
  // the device too (one call more than the binding reads make): memory moved to another device
  // by `.data = ...` can never pass for the same CPU buffer
  if (s.device_type(h, &device) != 0 || device != s.cpu || s.contiguous(h, &contiguous) != 0 || !contiguous ||
      s.data_ptr(h, &ptr) != 0 || s.numel(h, &f->n) != 0 || s.dtype(h, &dtype) != 0)
    return false;
  f->ptr = int64_t(reinterpret_cast<intptr_t>(ptr));
  f->code = -1;
  for (int32_t c = 0; c < FP_DTYPE_COUNT; ++c)
    if (dtype == s.dtype_of[c]) f->code = c;
  return f->code >= 0;
}

template <class T>
inline bool find(void* lib, const char* name, T* out) {
  *out = reinterpret_cast<T>(dlsym(lib, name));
  return *out != nullptr;
}

// Turns direct reads on when `library` (libtorch_cpu, already loaded) exports the shim and, for every
// probe tensor, the direct reads agree with the Python ones. Returns whether they are on.
inline bool register_direct(const std::string& library, py::list probes) {
  shim().on = false;
  if (!registered()) return false;
  void* lib = dlopen(library.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (!lib) return false;
  Shim s;
  using code_fn = int32_t (*)();
  code_fn f32, f64, f16, bf16, cpu;
  const bool found = find(lib, "aoti_torch_get_data_ptr", &s.data_ptr) && find(lib, "aoti_torch_get_numel", &s.numel) &&
                     find(lib, "aoti_torch_get_dtype", &s.dtype) && find(lib, "aoti_torch_is_contiguous", &s.contiguous) &&
                     find(lib, "aoti_torch_get_device_type", &s.device_type) &&
                     find(lib, "aoti_torch_device_type_cpu", &cpu) &&
                     find(lib, "aoti_torch_dtype_float32", &f32) && find(lib, "aoti_torch_dtype_float64", &f64) &&
                     find(lib, "aoti_torch_dtype_float16", &f16) && find(lib, "aoti_torch_dtype_bfloat16", &bf16);
  dlclose(lib);  // RTLD_NOLOAD took a reference on a library torch keeps loaded
  if (!found) return false;
  s.cpu = cpu();
  s.dtype_of[FP_FLOAT32] = f32();
  s.dtype_of[FP_FLOAT64] = f64();
  s.dtype_of[FP_FLOAT16] = f16();
  s.dtype_of[FP_BFLOAT16] = bf16();
  shim() = s;
  for (py::handle t : probes) {
    Facts direct, python;
    const bool contiguous = truth(call(api().is_contiguous, t.ptr())) == 1;
    if (!slot_is_own(t.ptr()) || direct_facts(t.ptr(), &direct) != contiguous ||
        (contiguous && !(read_facts(t.ptr(), &python) && direct == python)))
      return false;
  }
  shim().on = true;
  return true;
}

// What the full check adds for a new (or changed) object: facts fixed for an object's life, or that
// change only with its address.
inline bool plain_kind(PyObject* t) {
  const Torch& a = api();
  PyObject* type = reinterpret_cast<PyObject*>(Py_TYPE(t));
  if (type != a.tensor && type != a.parameter) return false;
  if (truth(get(a.is_cpu, t)) != 1 || truth(get(a.is_nested, t)) != 0 || truth(call(a.is_neg, t)) != 0)
    return false;
  PyObject* layout = get(a.layout, t);
  if (!layout) return false;
  const bool strided = layout == a.strided;
  Py_DECREF(layout);
  return strided;
}

inline bool same_shape(PyObject* x, PyObject* y) {
  PyObject* sx = get(api().shape, x);
  if (!sx) return false;
  PyObject* sy = get(api().shape, y);
  if (!sy) {
    Py_DECREF(sx);
    return false;
  }
  const int eq = PyObject_RichCompareBool(sx, sy, Py_EQ);
  Py_DECREF(sx);
  Py_DECREF(sy);
  if (eq < 0) PyErr_Clear();
  return eq == 1;
}

// ----------------------------------------------------------------------------------- factors

inline bool read_number(PyObject* obj, double* out) {
  if (PyFloat_CheckExact(obj)) {
    *out = PyFloat_AS_DOUBLE(obj);
  } else if (PyLong_CheckExact(obj)) {  // bool (an int subclass) goes the Python way
    *out = PyLong_AsDouble(obj);
    if (*out == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
  } else {
    return false;
  }
  return true;
}

inline bool valid(const std::vector<double>& fs) {
  for (double f : fs)
    if (!(f >= 0.0 && std::isfinite(f))) return false;
  return true;
}

// One factor or `count` factors: a number, a list/tuple of numbers, or a float64 CPU tensor (0-dim
// or 1-dim, one entry or `count`) that does not require grad, as Penalty keeps them.
inline bool read_factors(PyObject* obj, size_t count, std::vector<double>* out) {
  out->clear();
  double v;
  if (read_number(obj, &v)) {
    out->push_back(v);
    return valid(*out);
  }
  if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
    PyObject** items = PySequence_Fast_ITEMS(obj);
    if (size_t(PySequence_Fast_GET_SIZE(obj)) != count) return false;
    out->resize(count);
    for (size_t i = 0; i < count; ++i)
      if (!read_number(items[i], &(*out)[i])) return false;
    return valid(*out);
  }
  const Torch& a = api();
  Facts f;
  if (reinterpret_cast<PyObject*>(Py_TYPE(obj)) != a.tensor || !plain_kind(obj) || !read_facts(obj, &f) ||
      f.code != FP_FLOAT64 || truth(get(a.requires_grad, obj)) != 0)
    return false;
  if (f.n != 1 && size_t(f.n) != count) return false;
  PyObject* shape = get(a.shape, obj);
  if (!shape) return false;
  const Py_ssize_t dims = PyTuple_Size(shape);
  Py_DECREF(shape);
  if (dims < 0 || dims > 1) {
    PyErr_Clear();
    return false;
  }
  const double* values = reinterpret_cast<const double*>(f.ptr);
  out->assign(values, values + f.n);
  return valid(*out);
}

// l1s and l2s to a common length (1, or one per tensor).
inline void match_lengths(std::vector<double>& l1s, std::vector<double>& l2s) {
  if (l1s.size() == l2s.size()) return;
  if (l1s.size() == 1) l1s.assign(l2s.size(), l1s[0]);
  else l2s.assign(l1s.size(), l2s[0]);
}

// ---------------------------------------------------------------------------------- the plan

// The value as fastpenalty's torch layer returns it: fp64 when every tensor is fp64, else rounded to
// fp32 (inf beyond its range).
inline bool all_fp64(const std::vector<int32_t>& codes) {
  return fp_result_dtype(int64_t(codes.size()), codes.data()) == FP_FLOAT64;
}

inline double rounded(double v, bool fp64) { return fp64 ? v : double(static_cast<float>(v)); }

// One remembered tensor: a weak reference to the object and its facts when last checked.
struct Seen {
  PyObject* ref = nullptr;
  Facts facts;
  bool direct = false;  // the object's facts may be read through the shim (slot_is_own held)

  Seen() = default;
  Seen(const Seen&) = delete;
  Seen& operator=(const Seen&) = delete;
  Seen(Seen&& o) noexcept : ref(o.ref), facts(o.facts), direct(o.direct) { o.ref = nullptr; }
  ~Seen() { Py_XDECREF(ref); }

  bool holds(PyObject* t) const {
    if (!ref) return false;
#if PY_VERSION_HEX >= 0x030D0000
    PyObject* o = nullptr;
    if (PyWeakref_GetRef(ref, &o) < 0) {
      PyErr_Clear();
      return false;
    }
    Py_XDECREF(o);  // identity only: t itself keeps the object alive
    return o == t;
#else
    return PyWeakref_GET_OBJECT(ref) == t;
#endif
  }

  bool remember(PyObject* t, const Facts& f) {
    if (!holds(t)) {
      PyObject* r = PyWeakref_NewRef(t, nullptr);
      if (!r) {
        PyErr_Clear();
        return false;
      }
      Py_XDECREF(ref);
      ref = r;
      direct = shim().on && slot_is_own(t);
    }
    facts = f;
    return true;
  }
};

class Plan {
 public:
  // For tests and diagnostics: whether the last call was served here, and how many tensor objects
  // it gave the full check (0 when every tensor was recognised).
  bool was_served() const { return served_; }
  int64_t full_checks() const { return full_checks_; }

  // The total value of ws as (value, dtype, needs_graph), or None. needs_graph: `record` is set and
  // some w requires grad (the caller then records the autograd node around this value).
  py::object value_many(py::list ws, py::handle l1, py::handle l2, bool check_finite, bool record) {
    return served(value_many_(ws, l1, l2, check_finite, record));
  }

  py::object accumulate_many(py::list ws, py::list gs, py::handle l1, py::handle l2, bool check_finite) {
    return served(accumulate_many_(ws, gs, l1, l2, check_finite));
  }

  py::object accumulate_grads(py::list params, py::handle l1, py::handle l2, bool check_finite) {
    return served(accumulate_grads_(params, l1, l2, check_finite));
  }

  py::object prox_many(py::list ws, py::handle lr, py::handle l1, py::handle l2) {
    return served(prox_many_(ws, lr, l1, l2));
  }

 private:
  py::object served(py::object r) {
    served_ = !r.is_none();
    return r;
  }

  py::object value_many_(py::list ws, py::handle l1, py::handle l2, bool check_finite, bool record) {
    full_checks_ = 0;
    const size_t count = ws.size();
    if (busy_ || !registered() || count == 0) return py::none();
    resize(count);
    bool needs_graph = false;
    for (size_t i = 0; i < count; ++i) {
      PyObject* w = PyList_GET_ITEM(ws.ptr(), i);
      bool changed;
      if (!take(ws_[i], w, &changed)) return py::none();
      if (record && !needs_graph) {
        const int rg = truth(get(api().requires_grad, w));
        if (rg < 0) return py::none();
        needs_graph = rg == 1;
      }
      set_weight(i, ws_[i].facts);
    }
    if (!factors(l1, l2, count)) return py::none();
    double v;
    if (!value(count, check_finite, &v)) return py::none();
    return py::make_tuple(v, result_dtype(), needs_graph);
  }

  // The proximal step in place on every ws[i]: (value, dtype, zeros), or None with nothing
  // written (the Python path then checks and names what it refuses). Overlap, factors and the
  // products lr*l1, 2*lr*l2 are the core's checks, made before it writes anything.
  py::object prox_many_(py::list ws, py::handle lr, py::handle l1, py::handle l2) {
    full_checks_ = 0;
    const size_t count = ws.size();
    if (busy_ || !registered() || count == 0) return py::none();
    resize(count);
    for (size_t i = 0; i < count; ++i) {
      PyObject* w = PyList_GET_ITEM(ws.ptr(), i);
      bool changed;
      if (!take(ws_[i], w, &changed)) return py::none();
      if (changed && truth(call(api().is_inference, w)) != 0) {
        ws_[i].facts = Facts{};  // checked again next time
        return py::none();
      }
      set_weight(i, ws_[i].facts);
    }
    std::vector<double> lrs;
    if (!read_factors(lr.ptr(), count, &lrs) || !factors(l1, l2, count)) return py::none();
    std::vector<double>* per[] = {&lrs, &l1_, &l2_};
    for (std::vector<double>* f : per)
      if (f->size() == 1) f->assign(count, (*f)[0]);
    std::vector<void*> targets(count);
    for (size_t i = 0; i < count; ++i) targets[i] = const_cast<void*>(w_[i]);
    double v = 0.0;
    int64_t zeros = 0;
    const int64_t c = int64_t(count);
    if (!core([&] {
          return fp_prox_many(c, targets.data(), n_.data(), code_.data(), lrs.data(), l1_.data(), l2_.data(), &v,
                              &zeros);
        }))
      return py::none();
    PyObject* r = PyObject_CallOneArg(api().increment_version, ws.ptr());  // autograd sees the writes
    if (!r) throw py::error_already_set();
    Py_DECREF(r);
    return py::make_tuple(rounded(v, all_fp64(code_)), result_dtype(), zeros);
  }

  // Every gs[i] += grad(ws[i]); (value, dtype), or None with nothing written.
  py::object accumulate_many_(py::list ws, py::list gs, py::handle l1, py::handle l2, bool check_finite) {
    full_checks_ = 0;
    const size_t count = ws.size();
    if (busy_ || !registered() || count == 0 || gs.size() != count) return py::none();
    resize(count);
    for (size_t i = 0; i < count; ++i)
      if (!take_pair(i, PyList_GET_ITEM(ws.ptr(), i), PyList_GET_ITEM(gs.ptr(), i))) return py::none();
    if (!factors(l1, l2, count)) return py::none();
    return accumulate(count, gs, check_finite);
  }

  // Penalty.accumulate_: p.grad += grad(p) for every p that requires grad, plus the value of the
  // others; (value, dtype) or None (also when a p that requires grad has no grad yet).
  py::object accumulate_grads_(py::list params, py::handle l1, py::handle l2, bool check_finite) {
    full_checks_ = 0;
    const size_t count = params.size();
    if (busy_ || !registered() || count == 0) return py::none();
    const Torch& a = api();
    resize(count);
    py::list grads;
    frozen_.clear();
    for (size_t i = 0; i < count; ++i) {
      PyObject* p = PyList_GET_ITEM(params.ptr(), i);
      const int trainable = truth(get(a.requires_grad, p));
      if (trainable < 0) return py::none();
      if (!trainable) {
        frozen_.push_back(i);
        continue;
      }
      py::object g = py::reinterpret_steal<py::object>(get(a.grad, p));
      if (!g || g.is_none()) return py::none();
      const size_t k = grads.size();
      if (!take_pair(k, p, g.ptr(), i)) return py::none();
      grads.append(g);
    }
    if (!factors(l1, l2, count)) return py::none();
    if (frozen_.empty()) return accumulate(count, grads, check_finite);
    return accumulate_split(params, grads, check_finite);
  }

  bool served_ = false;
  int64_t full_checks_ = 0;
  bool busy_ = false;  // a call of this plan is in the core (GIL released): another thread goes Python's way
  std::vector<Seen> ws_, gs_;
  std::vector<const void*> w_;
  std::vector<void*> g_;
  std::vector<int64_t> n_;
  std::vector<int32_t> code_;
  std::vector<size_t> at_;  // position of pair k among the caller's tensors (factor index)
  std::vector<double> l1_, l2_;
  std::vector<size_t> frozen_;

  void resize(size_t count) {
    if (ws_.size() != count) {
      ws_.clear();
      gs_.clear();
      ws_.resize(count);
      gs_.resize(count);
    }
    w_.resize(count);
    g_.resize(count);
    n_.resize(count);
    code_.resize(count);
    at_.resize(count);
  }

  void set_weight(size_t k, const Facts& f) {
    w_[k] = reinterpret_cast<const void*>(f.ptr);
    n_[k] = f.n;
    code_[k] = f.code;
  }

  // A tensor of the same object as last time with the same facts, or one that passes the full check.
  bool take(Seen& s, PyObject* t, bool* changed) {
    Facts f;
    const bool same = s.holds(t);
    if (!(same && s.direct && shim().on ? direct_facts(t, &f) : read_facts(t, &f))) return false;
    *changed = !(same && s.facts == f);
    full_checks_ += *changed;
    if (*changed && !(plain_kind(t) && s.remember(t, f))) return false;
    return true;
  }

  // Pair k: weight w (the caller's tensor `at`) and its target g.
  bool take_pair(size_t k, PyObject* w, PyObject* g, size_t at = SIZE_MAX) {
    bool w_changed, g_changed;
    if (!take(ws_[k], w, &w_changed) || !take(gs_[k], g, &g_changed)) return false;
    const Facts &wf = ws_[k].facts, &gf = gs_[k].facts;
    if (gf.code != wf.code || gf.n != wf.n) return false;
    if (truth(get(api().requires_grad, g)) != 0) return false;
    if ((w_changed || g_changed) && (truth(call(api().is_inference, g)) != 0 || !same_shape(w, g))) {
      gs_[k].facts = Facts{};  // checked again next time
      return false;
    }
    set_weight(k, wf);
    g_[k] = reinterpret_cast<void*>(gf.ptr);
    at_[k] = at == SIZE_MAX ? k : at;
    return true;
  }

  bool factors(py::handle l1, py::handle l2, size_t count) {
    if (!read_factors(l1.ptr(), count, &l1_) || !read_factors(l2.ptr(), count, &l2_)) return false;
    match_lengths(l1_, l2_);
    return true;
  }

  py::object result_dtype() const { return py::reinterpret_borrow<py::object>(api().dtypes[all_fp64(code_) ? FP_FLOAT64 : FP_FLOAT32]); }

  // Runs f without the GIL, this plan marked busy; false when the core refused.
  template <class F>
  bool core(F&& f) {
    busy_ = true;
    fp_status s;
    {
      py::gil_scoped_release release;
      s = f();
    }
    busy_ = false;
    return s == FP_OK;
  }

  // The value of the first `count` weights; with check_finite, false unless every element and the
  // value are finite (the Python path then says which).
  bool value(size_t count, bool check_finite, double* out) {
    const int64_t c = int64_t(count);
    const bool fp64 = all_fp64(code_);
    if (check_finite) {
      const double one = 1.0, zero = 0.0;
      double abs_sum = 0.0;
      if (!core([&] { return fp_value_many(c, w_.data(), n_.data(), code_.data(), &one, &zero, 1, &abs_sum); }) ||
          !std::isfinite(abs_sum))
        return false;
    }
    if (!core([&] {
          return fp_value_many(c, w_.data(), n_.data(), code_.data(), l1_.data(), l2_.data(), int64_t(l1_.size()), out);
        }))
      return false;
    *out = rounded(*out, fp64);
    return !check_finite || std::isfinite(*out);
  }

  // Factors of pair k under at_ (one per caller tensor, or one for all).
  void pick_factors(size_t count, std::vector<double>* a, std::vector<double>* b) const {
    if (l1_.size() == 1) {
      *a = l1_;
      *b = l2_;
      return;
    }
    a->resize(count);
    b->resize(count);
    for (size_t k = 0; k < count; ++k) {
      (*a)[k] = l1_[at_[k]];
      (*b)[k] = l2_[at_[k]];
    }
  }

  bool accumulate_pairs(size_t count, py::handle gs, bool check_finite, double* out) {
    std::vector<double> a, b;
    pick_factors(count, &a, &b);
    a.swap(l1_);
    b.swap(l2_);  // value() reads l1_/l2_
    bool ok = true;
    if (check_finite) {
      double v;
      ok = value(count, true, &v);
    }
    const int64_t c = int64_t(count);
    ok = ok && core([&] {
      return fp_accumulate_many(c, w_.data(), g_.data(), n_.data(), code_.data(), l1_.data(), l2_.data(),
                                int64_t(l1_.size()), out);
    });
    a.swap(l1_);
    b.swap(l2_);
    if (!ok) return false;
    // autograd must see that the targets changed
    PyObject* r = PyObject_CallOneArg(api().increment_version, gs.ptr());
    if (!r) throw py::error_already_set();
    Py_DECREF(r);
    return true;
  }

  py::object accumulate(size_t count, py::handle gs, bool check_finite) {
    w_.resize(count);
    g_.resize(count);
    n_.resize(count);
    code_.resize(count);
    double v;
    if (!accumulate_pairs(count, gs, check_finite, &v)) return py::none();
    return py::make_tuple(rounded(v, all_fp64(code_)), result_dtype());
  }

  // Trainable pairs accumulate, frozen weights add their value: each part rounded to its result
  // dtype, then the sum (as the Python path does).
  py::object accumulate_split(py::list params, py::list grads, bool check_finite) {
    const size_t trained = grads.size(), frozen = frozen_.size();
    const std::vector<double> l1 = l1_, l2 = l2_;
    // the frozen weights' value first: nothing is written unless it passes
    std::vector<Seen> seen(frozen);
    std::vector<const void*> fw(frozen);
    std::vector<int64_t> fn(frozen);
    std::vector<int32_t> fc(frozen);
    std::vector<double> fl1, fl2;
    for (size_t j = 0; j < frozen; ++j) {
      Facts f;
      PyObject* p = PyList_GET_ITEM(params.ptr(), frozen_[j]);
      if (!read_facts(p, &f) || !plain_kind(p)) return py::none();
      fw[j] = reinterpret_cast<const void*>(f.ptr);
      fn[j] = f.n;
      fc[j] = f.code;
      if (l1.size() != 1) {
        fl1.push_back(l1[frozen_[j]]);
        fl2.push_back(l2[frozen_[j]]);
      }
    }
    if (l1.size() == 1) {
      fl1 = l1;
      fl2 = l2;
    }
    std::swap(fw, w_);
    std::swap(fn, n_);
    std::swap(fc, code_);
    std::swap(fl1, l1_);
    std::swap(fl2, l2_);
    double rest;
    const bool rest_ok = value(frozen, check_finite, &rest);
    const bool rest_fp64 = all_fp64(code_);
    std::swap(fw, w_);
    std::swap(fn, n_);
    std::swap(fc, code_);
    std::swap(fl1, l1_);
    std::swap(fl2, l2_);
    if (!rest_ok) return py::none();
    double total = 0.0;
    w_.resize(trained);
    g_.resize(trained);
    n_.resize(trained);
    code_.resize(trained);
    if (trained && !accumulate_pairs(trained, grads, check_finite, &total)) return py::none();
    const bool fp64 = trained && all_fp64(code_);
    const bool both = fp64 && rest_fp64;
    const double v = rounded(rounded(total, fp64) + rest, both);
    return py::make_tuple(v, py::reinterpret_borrow<py::object>(api().dtypes[both ? FP_FLOAT64 : FP_FLOAT32]));
  }
};

// The version counters of the weights of a recorded value_many node, so that its backward refuses
// weights modified in place since the forward, as save_for_backward would (without its per-tensor
// SavedVariable). `ok` is false when a counter cannot be read (the caller then saves the tensors).
class Versions {
 public:
  explicit Versions(py::tuple ts) {
    ok_ = registered();
    const Py_ssize_t n = PyTuple_GET_SIZE(ts.ptr());
    v_.reserve(size_t(n));
    for (Py_ssize_t i = 0; ok_ && i < n; ++i) {
      int64_t v;
      ok_ = read_version(PyTuple_GET_ITEM(ts.ptr(), i), &v);
      v_.push_back(v);
    }
  }

  bool ok() const { return ok_; }

  bool unchanged(py::tuple ts) const {
    const Py_ssize_t n = PyTuple_GET_SIZE(ts.ptr());
    if (!ok_ || size_t(n) != v_.size()) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      int64_t v;
      if (!read_version(PyTuple_GET_ITEM(ts.ptr(), i), &v) || v != v_[size_t(i)]) return false;
    }
    return true;
  }

 private:
  static bool read_version(PyObject* t, int64_t* out) {
    PyObject* r = get(api().version, t);
    if (!r) return false;
    *out = PyLong_AsLongLong(r);
    Py_DECREF(r);
    if (*out == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    return true;
  }

  bool ok_ = false;
  std::vector<int64_t> v_;
};

// Followed.unchanged: dicts[i][keys[i]] is objs[i] for every i (a module's _parameters slots).
inline bool slots_hold(py::list dicts, py::list keys, py::list objs) {
  const Py_ssize_t n = PyList_GET_SIZE(dicts.ptr());
  if (PyList_GET_SIZE(keys.ptr()) != n || PyList_GET_SIZE(objs.ptr()) != n) return false;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* d = PyList_GET_ITEM(dicts.ptr(), i);
    if (!PyDict_Check(d)) return false;
    PyObject* v = PyDict_GetItemWithError(d, PyList_GET_ITEM(keys.ptr(), i));
    if (!v) {
      PyErr_Clear();
      return false;
    }
    if (v != PyList_GET_ITEM(objs.ptr(), i)) return false;
  }
  return true;
}

inline void register_bindings(py::module_& m) {
  m.def("register_torch_types", &register_types, py::arg("tensor"), py::arg("parameter"), py::arg("dtypes"),
        py::arg("strided"), py::arg("descriptors"), py::arg("increment_version"),
        "torch's types, dtypes and Tensor descriptors for TorchPlan (fastpenalty.torch._cpu calls it).");
  m.def("register_torch_direct", &register_direct, py::arg("library"), py::arg("probes"),
        "Direct reads of checked tensors through libtorch's C shim; whether they are on.");
  m.def("torch_direct_reads", [] { return shim().on; }, "Whether TorchPlan reads checked tensors directly.");
  py::class_<Plan>(m, "TorchPlan", "The eager CPU fast path of fastpenalty.torch over remembered tensors.")
      .def(py::init<>())
      .def("value_many", &Plan::value_many, py::arg("ws"), py::arg("l1"), py::arg("l2"), py::arg("check_finite"),
           py::arg("record"))
      .def("accumulate_many", &Plan::accumulate_many, py::arg("ws"), py::arg("gs"), py::arg("l1"), py::arg("l2"),
           py::arg("check_finite"))
      .def("prox_many", &Plan::prox_many, py::arg("ws"), py::arg("lr"), py::arg("l1"), py::arg("l2"))
      .def("accumulate_grads", &Plan::accumulate_grads, py::arg("params"), py::arg("l1"), py::arg("l2"),
           py::arg("check_finite"))
      .def_property_readonly("was_served", &Plan::was_served)
      .def_property_readonly("full_checks", &Plan::full_checks);
  py::class_<Versions>(m, "TorchVersions", "The version counters of a tuple of tensors, read once.")
      .def(py::init<py::tuple>(), py::arg("tensors"))
      .def_property_readonly("ok", &Versions::ok)
      .def("unchanged", &Versions::unchanged, py::arg("tensors"));
  m.def("slots_hold", &slots_hold, py::arg("dicts"), py::arg("keys"), py::arg("objs"),
        "Whether dicts[i][keys[i]] is objs[i] for every i.");
}

}  // namespace fp_torch
