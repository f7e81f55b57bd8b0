// XLA FFI handlers (CPU) over the fastpenalty C ABI, registered with jax.ffi by
// python/fastpenalty/jax/_ffi.py. Every factor and cotangent is an operand (a traced array), so
// changing one never recompiles a jitted function; the C ABI checks them when the call runs.
//
//   fastpenalty_value_many(l1s, l2s, w_0..w_{n-1}) -> value        sum_i l1_i sum|w_i| + l2_i sum w_i^2
//   fastpenalty_grad_many(l1s, l2s, ct, w_0..) -> g_0..            g_i = ct * (l1_i sign(w_i) + 2 l2_i w_i)
//   fastpenalty_accumulate_many(l1s, l2s, w_0.., g_0..) -> value, g_0..   (g_i aliased: g_i += grad)
//   fastpenalty_sums(w_0..) -> (n, 2) per tensor (sum|w_i|, sum w_i^2), for factor derivatives
//
// l1s/l2s hold one factor or one per tensor; ct is a scalar. The value result is float64 when it
// is declared so (every weight float64), else float32.
//
// CUDA: a GPU build would register handlers of the same names for platform "CUDA" that take
// the stream through ffi::PlatformStream<cudaStream_t> and call a C ABI over device pointers;
// python/fastpenalty/jax/_ffi.py registers a "CUDA" target for every fp_jax_<op>_cuda symbol that
// the library exports (none yet).
#include <cmath>
#include <cstring>
#include <vector>

#include "common/dtype.h"
#include "common/penalty_math.h"
#include "jax/xla_buffers.h"

#define FP_JAX_EXPORT extern "C" __attribute__((visibility("default")))

namespace fp::jax {
namespace {

struct Tensor {
  const void* data;
  int64_t n;
  int32_t code;
};

ffi::ErrorOr<Tensor> weight(const ffi::AnyBuffer& w, const std::string& name) {
  const int32_t code = dtype_code(w.element_type());
  if (code < 0) return ffi::Unexpected(unsupported_dtype(name));
  return Tensor{w.untyped_data(), static_cast<int64_t>(w.element_count()), code};
}

ffi::Error check_like(const ffi::AnyBuffer& g, const Tensor& w, const std::string& name) {
  if (dtype_code(g.element_type()) != w.code || static_cast<int64_t>(g.element_count()) != w.n)
    return ffi::Error::InvalidArgument("fastpenalty: " + name + " does not match its weight's dtype and size");
  return ffi::Error::Success();
}

// g *= c in g's dtype: the rare cotangents (negative, or too large to fold into the factors)
// that the C ABI's factor check would refuse.
void scale_in_place(void* g, int64_t n, int32_t code, double c) {
  switch (code) {
    case FP_FLOAT64: {
      double* p = static_cast<double*>(g);
      for (int64_t i = 0; i < n; ++i) p[i] *= c;
      break;
    }
    case FP_FLOAT32: {
      float* p = static_cast<float*>(g);
      for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(p[i] * c);
      break;
    }
    case FP_FLOAT16: {
      uint16_t* p = static_cast<uint16_t*>(g);
      for (int64_t i = 0; i < n; ++i) p[i] = fp_f32_to_f16(static_cast<float>(fp_f16_to_f32(p[i]) * c));
      break;
    }
    default: {
      uint16_t* p = static_cast<uint16_t*>(g);
      for (int64_t i = 0; i < n; ++i) p[i] = fp_f32_to_bf16(static_cast<float>(fp_bf16_to_f32(p[i]) * c));
      break;
    }
  }
}

struct Factors {
  std::vector<double> l1, l2;
};

ffi::ErrorOr<Factors> factors(const ffi::AnyBuffer& l1s, const ffi::AnyBuffer& l2s, size_t count) {
  const size_t k = l1s.element_count();
  if (l2s.element_count() != k || (k != 1 && k != count))
    return ffi::Unexpected(ffi::Error::InvalidArgument(
        "fastpenalty: l1 and l2 must each hold one factor or one per tensor"));
  Factors f{std::vector<double>(k), std::vector<double>(k)};
  for (size_t i = 0; i < k; ++i) {
    f.l1[i] = scalar_at(l1s, i);
    f.l2[i] = scalar_at(l2s, i);
  }
  return f;
}

ffi::ErrorOr<std::vector<Tensor>> weights(const ffi::RemainingArgs& args, size_t count) {
  std::vector<Tensor> ws;
  ws.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    auto w = args.get<ffi::AnyBuffer>(i);
    if (!w) return ffi::Unexpected(w.error());
    auto t = weight(*w, "ws[" + std::to_string(i) + "]");
    if (!t) return ffi::Unexpected(t.error());
    ws.push_back(*t);
  }
  return ws;
}

struct Lists {
  std::vector<const void*> ptrs;
  std::vector<int64_t> ns;
  std::vector<int32_t> codes;
  explicit Lists(const std::vector<Tensor>& ws) {
    for (const Tensor& t : ws) {
      ptrs.push_back(t.data);
      ns.push_back(t.n);
      codes.push_back(t.code);
    }
  }
};

ffi::Error value_many_impl(ffi::AnyBuffer l1s, ffi::AnyBuffer l2s, ffi::RemainingArgs args,
                           ffi::Result<ffi::AnyBuffer> out) {
  const size_t count = args.size();
  auto ws = weights(args, count);
  if (!ws) return ws.error();
  auto f = factors(l1s, l2s, count);
  if (!f) return f.error();
  Lists lists(*ws);
  double v = 0.0;
  if (auto e = from_status(fp_value_many(int64_t(count), lists.ptrs.data(), lists.ns.data(), lists.codes.data(),
                                         f->l1.data(), f->l2.data(), int64_t(f->l1.size()), &v));
      e.failure())
    return e;
  return store_value(out, v);
}

// g = ct * grad(w; a, b) for one tensor.
ffi::Error scaled_grad(const Tensor& t, void* g, double a, double b, double ct) {
  // ct * grad(w; a, b) == grad(w; ct * a, ct * b) for ct >= 0: one pass, the scaling folded in.
  if (fp_factor_ok(a) && fp_factor_ok(b) && ct >= 0.0 && fp_factor_ok(ct * a) && fp_factor_ok(ct * b))
    return from_status(fp_grad(t.data, g, t.n, t.code, ct * a, ct * b));
  if (auto e = from_status(fp_grad(t.data, g, t.n, t.code, a, b)); e.failure()) return e;
  scale_in_place(g, t.n, t.code, ct);
  return ffi::Error::Success();
}

ffi::Error grad_many_impl(ffi::AnyBuffer l1s, ffi::AnyBuffer l2s, ffi::AnyBuffer ct, ffi::RemainingArgs args,
                          ffi::RemainingRets rets) {
  const size_t count = args.size();
  if (rets.size() != count) return ffi::Error::InvalidArgument("fastpenalty: one gradient per weight expected");
  auto ws = weights(args, count);
  if (!ws) return ws.error();
  auto f = factors(l1s, l2s, count);
  if (!f) return f.error();
  const double c = scalar_at(ct);
  for (size_t i = 0; i < count; ++i) {
    auto g = rets.get<ffi::AnyBuffer>(i);
    if (!g) return g.error();
    const Tensor& t = (*ws)[i];
    if (auto e = check_like(**g, t, "gradient " + std::to_string(i)); e.failure()) return e;
    const size_t k = f->l1.size() == 1 ? 0 : i;
    if (auto e = scaled_grad(t, (*g)->untyped_data(), f->l1[k], f->l2[k], c); e.failure()) return e;
  }
  return ffi::Error::Success();
}

ffi::Error accumulate_many_impl(ffi::AnyBuffer l1s, ffi::AnyBuffer l2s, ffi::RemainingArgs args,
                                ffi::Result<ffi::AnyBuffer> out, ffi::RemainingRets rets) {
  const size_t count = rets.size();
  if (args.size() != 2 * count) return ffi::Error::InvalidArgument("fastpenalty: one gradient per weight expected");
  auto ws = weights(args, count);
  if (!ws) return ws.error();
  auto f = factors(l1s, l2s, count);
  if (!f) return f.error();
  std::vector<void*> gs(count);
  for (size_t i = 0; i < count; ++i) {
    auto g_in = args.get<ffi::AnyBuffer>(count + i);
    auto g_out = rets.get<ffi::AnyBuffer>(i);
    if (!g_in) return g_in.error();
    if (!g_out) return g_out.error();
    const Tensor& t = (*ws)[i];
    const std::string name = "gradient " + std::to_string(i);
    if (auto e = check_like(*g_in, t, name); e.failure()) return e;
    if (auto e = check_like(**g_out, t, name); e.failure()) return e;
    // The Python side aliases g_out to g_in, so XLA hands over one buffer; copy if it ever does not.
    if ((*g_out)->untyped_data() != g_in->untyped_data())
      std::memcpy((*g_out)->untyped_data(), g_in->untyped_data(), g_in->size_bytes());
    gs[i] = (*g_out)->untyped_data();
  }
  Lists lists(*ws);
  double v = 0.0;
  if (auto e = from_status(fp_accumulate_many(int64_t(count), lists.ptrs.data(), gs.data(), lists.ns.data(),
                                              lists.codes.data(), f->l1.data(), f->l2.data(),
                                              int64_t(f->l1.size()), &v));
      e.failure())
    return e;
  return store_value(out, v);
}

// Per tensor (sum |w|, sum w^2), for the derivative with respect to the factors; out has shape
// (count, 2). One fp_sums_many call: each weight is read once, for both sums.
ffi::Error sums_impl(ffi::RemainingArgs args, ffi::Result<ffi::AnyBuffer> out) {
  const size_t count = args.size();
  auto ws = weights(args, count);
  if (!ws) return ws.error();
  if (out->element_count() != 2 * count) return ffi::Error::InvalidArgument("fastpenalty: sums result must be (n, 2)");
  const bool f64 = out->element_type() == ffi::DataType::F64;
  if (!f64 && out->element_type() != ffi::DataType::F32)
    return ffi::Error::InvalidArgument("fastpenalty: sums result must be float32 or float64");
  Lists lists(*ws);
  std::vector<double> abs_sums(count), sq_sums(count);
  if (auto e = from_status(fp_sums_many(int64_t(count), lists.ptrs.data(), lists.ns.data(), lists.codes.data(),
                                        abs_sums.data(), sq_sums.data()));
      e.failure())
    return e;
  for (size_t i = 0; i < count; ++i) {
    const double s[2] = {abs_sums[i], sq_sums[i]};
    for (int j = 0; j < 2; ++j) {
      if (f64)
        static_cast<double*>(out->untyped_data())[2 * i + j] = s[j];
      else
        static_cast<float*>(out->untyped_data())[2 * i + j] = static_cast<float>(s[j]);
    }
  }
  return ffi::Error::Success();
}
}  // namespace
}  // namespace fp::jax

namespace ffi = ::xla::ffi;

FP_JAX_EXPORT XLA_FFI_Error* fp_jax_value_many(XLA_FFI_CallFrame*);
FP_JAX_EXPORT XLA_FFI_Error* fp_jax_grad_many(XLA_FFI_CallFrame*);
FP_JAX_EXPORT XLA_FFI_Error* fp_jax_accumulate_many(XLA_FFI_CallFrame*);
FP_JAX_EXPORT XLA_FFI_Error* fp_jax_sums(XLA_FFI_CallFrame*);
// The XLA FFI API version of the headers this library was compiled with, "major.minor".
FP_JAX_EXPORT const char* fp_jax_xla_ffi_version(void);

XLA_FFI_DEFINE_HANDLER_SYMBOL(fp_jax_value_many, fp::jax::value_many_impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(fp_jax_grad_many, fp::jax::grad_many_impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .RemainingRets());

XLA_FFI_DEFINE_HANDLER_SYMBOL(fp_jax_accumulate_many, fp::jax::accumulate_many_impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .RemainingArgs()
                                  .Ret<ffi::AnyBuffer>()
                                  .RemainingRets());

XLA_FFI_DEFINE_HANDLER_SYMBOL(fp_jax_sums, fp::jax::sums_impl,
                              ffi::Ffi::Bind().RemainingArgs().Ret<ffi::AnyBuffer>());

#define FP_JAX_STR2(x) #x
#define FP_JAX_STR(x) FP_JAX_STR2(x)
const char* fp_jax_xla_ffi_version(void) { return FP_JAX_STR(XLA_FFI_API_MAJOR) "." FP_JAX_STR(XLA_FFI_API_MINOR); }
