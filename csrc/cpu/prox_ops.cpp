// The C ABI of the proximal step on the CPU (fp_prox_many, fp_prox): argument checks before any
// write, then the chunks of every tensor on the pool, each chunk's sums and zero count in its own
// slot, added in chunk order. The chunks are ops.cpp's (FP_CHUNK elements from each tensor's
// start) and the kernels' sums are value_chunk's, so the value equals fp_value_many of the new
// weights bit for bit, for any thread count.
#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "common/penalty_math.h"
#include "cpu/kernels.h"
#include "cpu/last_error.h"
#include "cpu/thread_pool.h"
#include "fastpenalty/fastpenalty_experimental.h"

namespace fp::cpu {
namespace {

// As in ops.cpp: below this many elements waking the workers costs more than it saves.
constexpr int64_t kParallelMinElements = int64_t(1) << 17;

struct ProxCall {
  int64_t count;
  void* const* ws;
  const int64_t* ns;
  const int32_t* dtypes;
  const double* lrs;
  const double* l1s;
  const double* l2s;
  const KernelTable* kernels;
  std::vector<int64_t> first_chunk;  // count + 1 entries: chunk index where tensor t starts
  ChunkSums* sums;
  int64_t* zeros;
};

void run_chunk(const ProxCall& c, int64_t t, int64_t chunk) {
  const int64_t offset = (chunk - c.first_chunk[t]) * FP_CHUNK;
  const int64_t len = std::min<int64_t>(FP_CHUNK, c.ns[t] - offset);
  const int32_t dt = c.dtypes[t];
  void* w = static_cast<char*>(c.ws[t]) + offset * fp_dtype_size(dt);
  c.zeros[chunk] = 0;
  c.sums[chunk] = c.kernels->prox[dt](w, len, c.lrs[t], c.l1s[t], c.l2s[t], &c.zeros[chunk]);
}

void run_part(void* ctx, int part, int parts) {
  const ProxCall& c = *static_cast<const ProxCall*>(ctx);
  const int64_t total = c.first_chunk[c.count];
  const int64_t begin = total * part / parts, end = total * (part + 1) / parts;
  if (begin >= end) return;
  int64_t t = std::upper_bound(c.first_chunk.begin(), c.first_chunk.end(), begin) - c.first_chunk.begin() - 1;
  for (int64_t chunk = begin; chunk < end; ++chunk) {
    while (chunk >= c.first_chunk[t + 1]) ++t;
    run_chunk(c, t, chunk);
  }
}

std::string tensor_name(int64_t t) { return "tensor " + std::to_string(t); }

// Every range is written, so no two may share a byte: one sweep over the ranges sorted by start.
fp_status check_no_overlap(const ProxCall& c) {
  struct Range {
    uintptr_t begin, end;
    int64_t tensor;
  };
  std::vector<Range> ranges;
  ranges.reserve(size_t(c.count));
  for (int64_t t = 0; t < c.count; ++t) {
    if (c.ns[t] == 0) continue;
    const auto w = reinterpret_cast<uintptr_t>(c.ws[t]);
    ranges.push_back({w, w + uintptr_t(c.ns[t]) * uintptr_t(fp_dtype_size(c.dtypes[t])), t});
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
  const Range* reach = nullptr;  // the range seen so far that ends last
  for (const Range& r : ranges) {
    if (reach && r.begin < reach->end)
      return report_error(FP_ERR_INVALID_ARGUMENT,
                          tensor_name(r.tensor) + " overlaps " + tensor_name(reach->tensor) + " in memory");
    if (!reach || r.end > reach->end) reach = &r;
  }
  return FP_OK;
}

fp_status check_factors(double lr, double l1, double l2, int64_t t) {
  const std::string which = tensor_name(t) + ": ";
  if (!fp_factor_ok(lr)) return report_error(FP_ERR_INVALID_ARGUMENT, which + "lr must be finite and >= 0, got " + std::to_string(lr));
  if (!fp_factor_ok(l1)) return report_error(FP_ERR_INVALID_ARGUMENT, which + "l1 must be finite and >= 0, got " + std::to_string(l1));
  if (!fp_factor_ok(l2)) return report_error(FP_ERR_INVALID_ARGUMENT, which + "l2 must be finite and >= 0, got " + std::to_string(l2));
  if (!fp_prox_factors_ok(lr, l1, l2))
    return report_error(FP_ERR_INVALID_ARGUMENT, which + "lr*l1 and 2*lr*l2 must be finite");
  return FP_OK;
}

fp_status check(const ProxCall& c) {
  if (c.count < 0) return report_error(FP_ERR_INVALID_ARGUMENT, "count must be >= 0");
  if (c.count == 0) return FP_OK;
  if (!c.ws || !c.ns || !c.dtypes) return report_error(FP_ERR_INVALID_ARGUMENT, "null array argument");
  if (!c.lrs || !c.l1s || !c.l2s) return report_error(FP_ERR_INVALID_ARGUMENT, "null factor array");
  for (int64_t t = 0; t < c.count; ++t) {
    if (fp_status s = check_factors(c.lrs[t], c.l1s[t], c.l2s[t], t); s != FP_OK) return s;
    const std::string which = tensor_name(t) + ": ";
    if (!fp_dtype_known(c.dtypes[t]))
      return report_error(FP_ERR_UNSUPPORTED_DTYPE, which + "unsupported dtype code " + std::to_string(c.dtypes[t]));
    if (c.ns[t] < 0) return report_error(FP_ERR_INVALID_ARGUMENT, which + "negative element count");
    if (c.ns[t] > 0 && !c.ws[t]) return report_error(FP_ERR_INVALID_ARGUMENT, which + "null weight pointer");
  }
  return check_no_overlap(c);
}

fp_status run(ProxCall& c, double* out_value, int64_t* out_zeros) {
  if (fp_status s = check(c); s != FP_OK) return s;
  *out_value = 0.0;
  *out_zeros = 0;
  if (c.count == 0) return FP_OK;

  static thread_local std::vector<ChunkSums> sums;
  static thread_local std::vector<int64_t> zeros;
  try {
    c.first_chunk.resize(size_t(c.count) + 1);
    int64_t chunks = 0;
    for (int64_t t = 0; t < c.count; ++t) {
      c.first_chunk[t] = chunks;
      chunks += (c.ns[t] + FP_CHUNK - 1) / FP_CHUNK;
    }
    c.first_chunk[c.count] = chunks;
    sums.resize(size_t(chunks));
    zeros.resize(size_t(chunks));
  } catch (const std::bad_alloc&) {
    return report_error(FP_ERR_OUT_OF_MEMORY, "out of memory for the chunk table");
  }
  c.sums = sums.data();
  c.zeros = zeros.data();
  c.kernels = &active_kernels();

  const int64_t chunks = c.first_chunk[c.count];
  int64_t elements = 0;
  for (int64_t t = 0; t < c.count; ++t) elements += c.ns[t];
  const int parts = elements < kParallelMinElements ? 1 : int(std::min<int64_t>(pool_num_threads(), chunks));
  pool_run(parts, run_part, &c);

  double total = 0.0;
  int64_t zero_count = 0;
  for (int64_t t = 0; t < c.count; ++t) {
    ChunkSums s;
    for (int64_t k = c.first_chunk[t]; k < c.first_chunk[t + 1]; ++k) {
      add_sums(s, c.sums[k]);
      zero_count += c.zeros[k];
    }
    total += combine_sums(s, c.l1s[t], c.l2s[t]);
  }
  *out_value = total;
  *out_zeros = zero_count;
  return FP_OK;
}

}  // namespace
}  // namespace fp::cpu

extern "C" {

fp_status fp_prox_many(int64_t count, void* const* ws, const int64_t* ns, const int32_t* dtypes, const double* lrs,
                       const double* l1s, const double* l2s, double* out_value, int64_t* out_zeros) {
  if (!out_value || !out_zeros)
    return fp::cpu::report_error(FP_ERR_INVALID_ARGUMENT, "out_value and out_zeros must not be null");
  fp::cpu::ProxCall c{count, ws, ns, dtypes, lrs, l1s, l2s, nullptr, {}, nullptr, nullptr};
  try {
    return fp::cpu::run(c, out_value, out_zeros);
  } catch (const std::bad_alloc&) {
    return fp::cpu::report_error(FP_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (...) {
    return fp::cpu::report_error(FP_ERR_INTERNAL, "internal error");
  }
}

fp_status fp_prox(void* w, int64_t n, int32_t dtype, double lr, double l1, double l2, double* out_value,
                  int64_t* out_zeros) {
  return fp_prox_many(1, &w, &n, &dtype, &lr, &l1, &l2, out_value, out_zeros);
}

}  // extern "C"
