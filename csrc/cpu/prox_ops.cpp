// The C ABI of the proximal step on the CPU (fp_prox_many, fp_prox): argument checks before any
// write, then the chunks of every tensor on the pool, each chunk's sums and zero count in its own
// slot, added in chunk order. The chunks are those of ops.cpp (cpu/chunks.h: FP_CHUNK elements
// from each tensor's start) and the kernels' sums are value_chunk's, so the value equals
// fp_value_many of the new weights bit for bit, for any thread count.
#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "common/penalty_math.h"
#include "cpu/chunks.h"
#include "cpu/kernels.h"
#include "cpu/last_error.h"
#include "cpu/overlap.h"
#include "cpu/thread_pool.h"
#include "fastpenalty/fastpenalty_experimental.h"

namespace fp::cpu {
namespace {

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
  ChunkClaims claims;  // which chunks the pool's parts have taken
};

void run_chunk(const ProxCall& c, int64_t t, int64_t chunk, int64_t offset, int64_t len) {
  const int32_t dt = c.dtypes[t];
  void* w = static_cast<char*>(c.ws[t]) + offset * fp_dtype_size(dt);
  c.zeros[chunk] = 0;
  c.sums[chunk] = c.kernels->prox[dt](w, len, c.lrs[t], c.l1s[t], c.l2s[t], &c.zeros[chunk]);
}

void run_part(void* ctx, int, int parts) {
  ProxCall& c = *static_cast<ProxCall*>(ctx);
  for_each_claimed_chunk(c.first_chunk, c.ns, parts, c.claims, [&](int64_t t, int64_t chunk, int64_t offset, int64_t len) {
    run_chunk(c, t, chunk, offset, len);
  });
}

std::string tensor_name(int64_t t) { return "tensor " + std::to_string(t); }

// Every range is written, so no two may share a byte.
fp_status check_no_overlap(const ProxCall& c) {
  std::vector<MemoryRange> ranges;
  ranges.reserve(size_t(c.count));
  for (int64_t t = 0; t < c.count; ++t) {
    if (c.ns[t] == 0) continue;
    const auto w = reinterpret_cast<uintptr_t>(c.ws[t]);
    ranges.push_back({w, w + uintptr_t(c.ns[t]) * uintptr_t(fp_dtype_size(c.dtypes[t])), t, true});
  }
  const auto [r, hit] = find_write_overlap(ranges);
  if (!r) return FP_OK;
  return report_error(FP_ERR_INVALID_ARGUMENT, tensor_name(r->tensor) + " overlaps " + tensor_name(hit->tensor) + " in memory");
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
    number_chunks(c.first_chunk, c.count, c.ns);
    sums.resize(size_t(c.first_chunk.back()));
    zeros.resize(size_t(c.first_chunk.back()));
  } catch (const std::bad_alloc&) {
    return report_error(FP_ERR_OUT_OF_MEMORY, "out of memory for the chunk table");
  }
  c.sums = sums.data();
  c.zeros = zeros.data();
  c.kernels = &active_kernels();

  pool_run(parts_for(c.first_chunk, c.count, c.ns), run_part, &c);

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
