// Host side of the tensor table (layout in tensor_table.h): every entry is validated before the
// first byte is written, so a bad list raises before anything reaches the device.
#include "cuda/tensor_table.h"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "cuda/api.h"

namespace fp::cuda {
namespace {

// Keeps table sizes and every tensor index far inside int64 and int32 limits.
constexpr int64_t kMaxTensors = int64_t(1) << 30;

[[noreturn]] void bad(size_t t, const std::string& what) {
  throw std::invalid_argument("fastpenalty._cuda: tensor " + std::to_string(t) + ": " + what);
}

int64_t chunks_of(int64_t n) { return n / kChunk + (n % kChunk != 0 ? 1 : 0); }

}  // namespace

int64_t table_bytes(int64_t num_tensors) {
  if (num_tensors < 1 || num_tensors > kMaxTensors)
    throw std::invalid_argument("fastpenalty._cuda: a tensor table holds 1 to 2^30 tensors, not " +
                                std::to_string(num_tensors));
  return table_bytes_for(num_tensors);
}

int64_t fill_table(uint64_t host, int64_t capacity, const std::vector<uint64_t>& w_ptrs,
                   const std::vector<uint64_t>& g_ptrs, const std::vector<int64_t>& ns,
                   const std::vector<int32_t>& dtypes) {
  const size_t count = w_ptrs.size();
  if (ns.size() != count || dtypes.size() != count)
    throw std::invalid_argument("fastpenalty._cuda: w_ptrs, ns and dtypes have different lengths (" +
                                std::to_string(count) + ", " + std::to_string(ns.size()) + ", " +
                                std::to_string(dtypes.size()) + ")");
  const bool accumulate = !g_ptrs.empty();
  if (accumulate && g_ptrs.size() != count)
    throw std::invalid_argument("fastpenalty._cuda: " + std::to_string(count) + " weights but " +
                                std::to_string(g_ptrs.size()) + " gradients");
  const int64_t need = table_bytes(int64_t(count));
  if (host == 0 || capacity < need)
    throw std::invalid_argument("fastpenalty._cuda: the table buffer needs " + std::to_string(need) + " bytes");

  std::vector<int64_t> chunks(count);
  int64_t total = 0;
  for (size_t t = 0; t < count; ++t) {
    const int32_t dt = dtypes[t];
    if (dt < 0 || dt >= kNumDtypes) bad(t, "unsupported dtype code " + std::to_string(dt));
    const int64_t n = ns[t];
    if (n < 0) bad(t, "negative size " + std::to_string(n));
    if (n > kMaxTotalChunks * kChunk) bad(t, "too many elements (" + std::to_string(n) + ")");
    if (n > 0) {
      const uint64_t size = uint64_t(fp_dtype_size(dt));
      const uint64_t w = w_ptrs[t];
      if (w == 0) bad(t, "null weight pointer");
      if (w % size != 0) bad(t, "weight pointer not aligned to its element size");
      if (accumulate) {
        const uint64_t g = g_ptrs[t];
        const uint64_t bytes = uint64_t(n) * size;
        if (g == 0) bad(t, "null gradient pointer");
        if (g % size != 0) bad(t, "gradient pointer not aligned to its element size");
        if (w < g + bytes && g < w + bytes) bad(t, "weight and gradient memory overlap");
      }
    }
    chunks[t] = chunks_of(n);
    total += chunks[t];
    if (total > kMaxTotalChunks) bad(t, "the list holds too many elements for one launch");
  }

  char* base = reinterpret_cast<char*>(static_cast<uintptr_t>(host));
  const int64_t begins = chunk_begin_offset(int64_t(count));
  int64_t begin = 0;
  for (size_t t = 0; t < count; ++t) {
    TensorEntry e{};
    e.w = w_ptrs[t];
    e.g = accumulate ? g_ptrs[t] : 0;
    e.n = ns[t];
    e.dtype = dtypes[t];
    e.vector_ok = (e.n > 0 && e.w % 16 == 0 && (!accumulate || e.g % 16 == 0)) ? 1 : 0;
    std::memcpy(base + t * sizeof(TensorEntry), &e, sizeof e);
    std::memcpy(base + begins + int64_t(t) * 8, &begin, 8);
    begin += chunks[t];
  }
  std::memcpy(base + begins + int64_t(count) * 8, &begin, 8);
  return total;
}

}  // namespace fp::cuda
