// The C ABI on the CPU: argument checks, chunking, the thread pool and the fixed-order reduction.
// Every tensor is cut into chunks of FP_CHUNK elements; each chunk's sums go to its own slot and
// the slots are added in chunk order, so the value is the same for any thread count.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "common/penalty_math.h"
#include "cpu/chunks.h"
#include "cpu/config.h"
#include "cpu/kernels.h"
#include "cpu/last_error.h"
#include "cpu/overlap.h"
#include "cpu/thread_pool.h"
#include "fastpenalty/fastpenalty_experimental.h"

namespace fp::cpu {
namespace {

thread_local std::string g_error;

// Test hook (fp_experimental_fail_next_allocations): how many coming chunk-table allocations fail.
std::atomic<int> g_failing_allocations{0};

}  // namespace

bool allocation_must_fail() {
  int n = g_failing_allocations.load(std::memory_order_relaxed);
  while (n > 0)
    if (g_failing_allocations.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  return false;
}

namespace {

fp_status fail(fp_status status, std::string message) {
  g_error = std::move(message);
  return status;
}

enum class Mode { value, sums, accumulate, grad, probe_add, probe_sum };

struct Call {
  Mode mode;
  int64_t count;
  const void* const* ws;
  void* const* gs;  // accumulate: g; grad: out; probe_add: g
  const int64_t* ns;
  const int32_t* dtypes;
  const double* l1s;
  const double* l2s;
  int64_t n_factors;
  const KernelTable* kernels;
  std::vector<int64_t> first_chunk;  // count + 1 entries: chunk index where tensor t starts
  ChunkSums* partials;
  ChunkClaims claims;  // which chunks the pool's parts have taken

  double l1(int64_t t) const { return n_factors == 1 ? l1s[0] : l1s[t]; }
  double l2(int64_t t) const { return n_factors == 1 ? l2s[0] : l2s[t]; }
};

void run_chunk(const Call& c, int64_t t, int64_t chunk, int64_t offset, int64_t len) {
  const int32_t dt = c.dtypes[t];
  const int64_t bytes = offset * fp_dtype_size(dt);
  const void* w = static_cast<const char*>(c.ws[t]) + bytes;
  void* g = c.gs ? static_cast<char*>(c.gs[t]) + bytes : nullptr;
  const KernelTable& k = *c.kernels;
  switch (c.mode) {
    case Mode::value:
    case Mode::sums:
      c.partials[chunk] = k.value[dt](w, len);
      break;
    case Mode::accumulate:
      c.partials[chunk] = k.accumulate[dt](w, g, len, c.l1(t), c.l2(t));
      break;
    case Mode::grad:
      k.grad[dt](w, g, len, c.l1(t), c.l2(t));
      break;
    case Mode::probe_add:
      k.probe_add[dt](w, g, len);
      break;
    case Mode::probe_sum:
      c.partials[chunk] = ChunkSums{k.probe_sum[dt](w, len), 0.0};
      break;
  }
}

void run_part(void* ctx, int, int parts) {
  Call& c = *static_cast<Call*>(ctx);
  for_each_claimed_chunk(c.first_chunk, c.ns, parts, c.claims, [&](int64_t t, int64_t chunk, int64_t offset, int64_t len) {
    run_chunk(c, t, chunk, offset, len);
  });
}

// Every written range (a g) must be disjoint from every other range, read or written; weights may
// share memory with each other.
fp_status check_write_overlap(const Call& c) {
  std::vector<MemoryRange> ranges;
  ranges.reserve(size_t(c.count) * 2);
  for (int64_t t = 0; t < c.count; ++t) {
    if (c.ns[t] == 0) continue;
    const uintptr_t bytes = uintptr_t(c.ns[t]) * uintptr_t(fp_dtype_size(c.dtypes[t]));
    const auto w = reinterpret_cast<uintptr_t>(c.ws[t]), g = reinterpret_cast<uintptr_t>(c.gs[t]);
    ranges.push_back({w, w + bytes, t, false});
    ranges.push_back({g, g + bytes, t, true});
  }
  const auto [r, hit] = find_write_overlap(ranges);
  if (!r) return FP_OK;
  auto name = [](const MemoryRange* x) { return std::string(x->written ? "gradient " : "weight ") + std::to_string(x->tensor); };
  return fail(FP_ERR_INVALID_ARGUMENT, name(r) + " overlaps " + name(hit) + " in memory");
}

fp_status check(const Call& c, bool needs_g) {
  if (c.count < 0) return fail(FP_ERR_INVALID_ARGUMENT, "count must be >= 0");
  if (c.count > 0 && (!c.ws || !c.ns || !c.dtypes)) return fail(FP_ERR_INVALID_ARGUMENT, "null array argument");
  if (needs_g && c.count > 0 && !c.gs) return fail(FP_ERR_INVALID_ARGUMENT, "null gradient array");
  const bool uses_factors = c.mode == Mode::value || c.mode == Mode::accumulate || c.mode == Mode::grad;
  if (uses_factors && c.count > 0) {
    if (c.n_factors != 1 && c.n_factors != c.count)
      return fail(FP_ERR_INVALID_ARGUMENT, "n_factors must be 1 or the number of tensors");
    if (!c.l1s || !c.l2s) return fail(FP_ERR_INVALID_ARGUMENT, "null factor array");
    for (int64_t i = 0; i < c.n_factors; ++i) {
      if (!fp_factor_ok(c.l1s[i]))
        return fail(FP_ERR_INVALID_ARGUMENT, "l1 must be finite and >= 0, got " + std::to_string(c.l1s[i]));
      if (!fp_factor_ok(c.l2s[i]))
        return fail(FP_ERR_INVALID_ARGUMENT, "l2 must be finite and >= 0, got " + std::to_string(c.l2s[i]));
    }
  }
  const bool probe = c.mode == Mode::probe_add || c.mode == Mode::probe_sum;
  for (int64_t t = 0; t < c.count; ++t) {
    const std::string which = "tensor " + std::to_string(t) + ": ";
    const int32_t dt = c.dtypes[t];
    if (!fp_dtype_known(dt) || (probe && dt != FP_FLOAT32 && dt != FP_FLOAT64))
      return fail(FP_ERR_UNSUPPORTED_DTYPE, which + "unsupported dtype code " + std::to_string(dt));
    if (c.ns[t] < 0) return fail(FP_ERR_INVALID_ARGUMENT, which + "negative element count");
    if (c.ns[t] == 0) continue;
    if (!c.ws[t]) return fail(FP_ERR_INVALID_ARGUMENT, which + "null weight pointer");
    if (needs_g && !c.gs[t]) return fail(FP_ERR_INVALID_ARGUMENT, which + "null gradient pointer");
  }
  return needs_g ? check_write_overlap(c) : FP_OK;
}

// out: the total value (value, accumulate, probe_sum modes); out_abs/out_sq: the two sums of every
// tensor (sums mode). Nothing is written before the checks pass.
fp_status run_call(Call& c, double* out, double* out_abs, double* out_sq) {
  const bool needs_g = c.mode == Mode::accumulate || c.mode == Mode::grad || c.mode == Mode::probe_add;
  if (fp_status s = check(c, needs_g); s != FP_OK) return s;
  if (out) *out = 0.0;
  if (c.count == 0) return FP_OK;

  static thread_local std::vector<ChunkSums> partials;
  try {
    number_chunks(c.first_chunk, c.count, c.ns);
    partials.resize(size_t(c.first_chunk.back()));
  } catch (const std::bad_alloc&) {
    return fail(FP_ERR_OUT_OF_MEMORY, "out of memory for the chunk table");
  }
  c.partials = partials.data();
  c.kernels = &active_kernels();

  pool_run(parts_for(c.first_chunk, c.count, c.ns), run_part, &c);

  if (!out && !out_abs) return FP_OK;
  double total = 0.0;
  for (int64_t t = 0; t < c.count; ++t) {
    ChunkSums s;
    for (int64_t k = c.first_chunk[t]; k < c.first_chunk[t + 1]; ++k) add_sums(s, c.partials[k]);
    if (c.mode == Mode::sums) {
      out_abs[t] = combine_sums(s, 1.0, 0.0);
      out_sq[t] = combine_sums(s, 0.0, 1.0);
    } else {
      total += (c.mode == Mode::probe_sum) ? s.abs : combine_sums(s, c.l1(t), c.l2(t));
    }
  }
  if (out) *out = total;
  return FP_OK;
}

// No exception leaves the C ABI: allocation failures anywhere (the overlap sweep's range list, the
// chunk table) become FP_ERR_OUT_OF_MEMORY. The messages fit std::string's inline buffer.
fp_status execute(Call& c, double* out, double* out_abs = nullptr, double* out_sq = nullptr) noexcept {
  try {
    return run_call(c, out, out_abs, out_sq);
  } catch (const std::bad_alloc&) {
    g_error = "out of memory";
    return FP_ERR_OUT_OF_MEMORY;
  } catch (...) {
    g_error = "internal error";
    return FP_ERR_INTERNAL;
  }
}

Call make_call(Mode mode, int64_t count, const void* const* ws, void* const* gs, const int64_t* ns,
               const int32_t* dtypes, const double* l1s, const double* l2s, int64_t n_factors) {
  return Call{mode, count, ws, gs, ns, dtypes, l1s, l2s, n_factors, nullptr, {}, nullptr};
}

}  // namespace

fp_status report_error(fp_status status, std::string message) { return fail(status, std::move(message)); }

}  // namespace fp::cpu

using fp::cpu::Call;
using fp::cpu::Mode;

extern "C" {

const char* fp_last_error(void) { return fp::cpu::g_error.c_str(); }

fp_status fp_value_many(int64_t count, const void* const* ws, const int64_t* ns, const int32_t* dtypes,
                        const double* l1s, const double* l2s, int64_t n_factors, double* out) {
  if (!out) return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT, "out must not be null");
  Call c = fp::cpu::make_call(Mode::value, count, ws, nullptr, ns, dtypes, l1s, l2s, n_factors);
  return fp::cpu::execute(c, out);
}

fp_status fp_sums_many(int64_t count, const void* const* ws, const int64_t* ns, const int32_t* dtypes,
                       double* out_abs, double* out_sq) {
  if (count > 0 && (!out_abs || !out_sq)) return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT, "out_abs and out_sq must not be null");
  Call c = fp::cpu::make_call(Mode::sums, count, ws, nullptr, ns, dtypes, nullptr, nullptr, 0);
  return fp::cpu::execute(c, nullptr, out_abs, out_sq);
}

fp_status fp_accumulate_many(int64_t count, const void* const* ws, void* const* gs, const int64_t* ns,
                             const int32_t* dtypes, const double* l1s, const double* l2s, int64_t n_factors,
                             double* out) {
  if (!out) return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT, "out must not be null");
  Call c = fp::cpu::make_call(Mode::accumulate, count, ws, gs, ns, dtypes, l1s, l2s, n_factors);
  return fp::cpu::execute(c, out);
}

fp_status fp_value(const void* w, int64_t n, int32_t dtype, double l1, double l2, double* out) {
  return fp_value_many(1, &w, &n, &dtype, &l1, &l2, 1, out);
}

fp_status fp_accumulate(const void* w, void* g, int64_t n, int32_t dtype, double l1, double l2, double* out) {
  return fp_accumulate_many(1, &w, &g, &n, &dtype, &l1, &l2, 1, out);
}

fp_status fp_grad_many(int64_t count, const void* const* ws, void* const* outs, const int64_t* ns,
                       const int32_t* dtypes, const double* l1s, const double* l2s, int64_t n_factors) {
  Call c = fp::cpu::make_call(Mode::grad, count, ws, outs, ns, dtypes, l1s, l2s, n_factors);
  return fp::cpu::execute(c, nullptr);
}

fp_status fp_grad(const void* w, void* out_grad, int64_t n, int32_t dtype, double l1, double l2) {
  return fp_grad_many(1, &w, &out_grad, &n, &dtype, &l1, &l2, 1);
}

void fp_experimental_fail_next_allocations(int n) {
  fp::cpu::g_failing_allocations.store(n > 0 ? n : 0, std::memory_order_relaxed);
}

fp_status fp_probe_add(const void* w, void* g, int64_t n, int32_t dtype) {
  Call c = fp::cpu::make_call(Mode::probe_add, 1, &w, &g, &n, &dtype, nullptr, nullptr, 0);
  return fp::cpu::execute(c, nullptr);
}

fp_status fp_probe_sum(const void* w, int64_t n, int32_t dtype, double* out) {
  if (!out) return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT, "out must not be null");
  Call c = fp::cpu::make_call(Mode::probe_sum, 1, &w, nullptr, &n, &dtype, nullptr, nullptr, 0);
  return fp::cpu::execute(c, out);
}

fp_status fp_set_num_threads(int n) {
  if (n < 1 || n > FP_MAX_THREADS)
    return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT,
                         "number of threads must be in [1, " + std::to_string(FP_MAX_THREADS) + "], got " +
                             std::to_string(n));
  fp::cpu::pool_set_num_threads(n);
  return FP_OK;
}

int fp_get_num_threads(void) { return fp::cpu::pool_num_threads(); }

fp_status fp_set_isa(const char* name) {
  fp::cpu::Isa isa;
  if (!name || !fp::cpu::isa_from_name(name, &isa))
    return fp::cpu::fail(FP_ERR_INVALID_ARGUMENT, std::string("unknown ISA '") + (name ? name : "(null)") +
                                                      "', expected scalar, avx2 or avx512");
  if (!fp::cpu::isa_supported(isa))
    return fp::cpu::fail(FP_ERR_UNSUPPORTED_ISA, std::string("this CPU does not support ") + name +
                                                     " (best: " + fp_best_isa() + ")");
  fp::cpu::set_active_isa(isa);
  return FP_OK;
}

const char* fp_config_warning(void) { return fp::cpu::env_config().warning.c_str(); }

const char* fp_get_isa(void) { return fp::cpu::isa_name(fp::cpu::active_isa()); }

const char* fp_best_isa(void) { return fp::cpu::isa_name(fp::cpu::best_supported_isa()); }

const char* fp_available_isas(void) {
  switch (fp::cpu::best_supported_isa()) {
    case fp::cpu::Isa::avx512:
      return "avx512,avx2,scalar";
    case fp::cpu::Isa::avx2:
      return "avx2,scalar";
    default:
      return "scalar";
  }
}

}  // extern "C"
