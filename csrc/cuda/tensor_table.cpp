// Host side of the by-value tensor tables (tensor_table.h): every entry is validated before the
// first launch, so a bad list raises before anything reaches the device.
#include "cuda/tensor_table.h"

#include <stdexcept>
#include <string>

#include "common/dtype.h"

namespace fp::cuda {
namespace {

[[noreturn]] void bad(int64_t t, const std::string& what) {
  throw std::invalid_argument("fastpenalty._cuda: tensor " + std::to_string(t) + ": " + what);
}

int64_t chunks_of(int64_t n, int32_t dtype) {
  const int64_t c = chunk_elements(dtype);
  return n / c + (n % c != 0 ? 1 : 0);
}

}  // namespace

void validate_list(const TensorList& list) {
  for (int64_t t = 0; t < list.count; ++t) {
    const int32_t dt = list.dtype[t];
    if (dt < 0 || dt >= kNumDtypes) bad(t, "unsupported dtype code " + std::to_string(dt));
    const int64_t n = list.n[t];
    if (n < 0) bad(t, "negative size " + std::to_string(n));
    if (n > kMaxChunks * chunk_elements(dt)) bad(t, "too many elements (" + std::to_string(n) + ")");
    if (n == 0) continue;
    const uint64_t size = uint64_t(fp_dtype_size(dt));
    const uint64_t w = list.w[t];
    if (w == 0) bad(t, "null weight pointer");
    if (w % size != 0) bad(t, "weight pointer not aligned to its element size");
    if (list.g != nullptr) {
      const uint64_t g = list.g[t];
      const uint64_t bytes = uint64_t(n) * size;
      if (g == 0) bad(t, "null gradient pointer");
      if (g % size != 0) bad(t, "gradient pointer not aligned to its element size");
      if (w < g + bytes && g < w + bytes) bad(t, "weight and gradient memory overlap");
    }
  }
}

int64_t pack_table(const TensorList& list, int64_t first, int64_t count, TensorTable& table) {
  table.count = count;
  int64_t begin = 0;
  for (int64_t s = 0; s < count; ++s) {
    const int64_t t = first + s;
    TensorEntry& e = table.entries[s];
    e.w = list.w[t];
    e.g = list.g != nullptr ? list.g[t] : 0;
    e.n = list.n[t];
    e.dtype = list.dtype[t];
    e.vector_ok = (e.n > 0 && e.w % 16 == 0 && (list.g == nullptr || e.g % 16 == 0)) ? 1 : 0;
    table.chunk_begin[s] = begin;
    begin += chunks_of(e.n, e.dtype);
  }
  table.chunk_begin[count] = begin;
  return begin;
}

}  // namespace fp::cuda
