// The overlap check of the entry points that write (ops.cpp, prox_ops.cpp): a written range may not
// share a byte with any other range, read or written; read ranges may share memory with each other.
// One sweep over the ranges sorted by start.
#pragma once
#include <stdint.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace fp::cpu {

struct MemoryRange {
  uintptr_t begin, end;
  int64_t tensor;
  bool written;
};

// The first overlapping pair found (the later-starting range first), or {nullptr, nullptr}.
// Sorts `ranges`.
inline std::pair<const MemoryRange*, const MemoryRange*> find_write_overlap(std::vector<MemoryRange>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const MemoryRange& a, const MemoryRange& b) { return a.begin < b.begin; });
  const MemoryRange* last_any = nullptr;      // of the ranges seen so far, the one that ends last
  const MemoryRange* last_written = nullptr;  // the same among the written ones
  for (const MemoryRange& r : ranges) {
    if (last_written && r.begin < last_written->end) return {&r, last_written};
    if (r.written && last_any && r.begin < last_any->end) return {&r, last_any};
    if (!last_any || r.end > last_any->end) last_any = &r;
    if (r.written && (!last_written || r.end > last_written->end)) last_written = &r;
  }
  return {nullptr, nullptr};
}

}  // namespace fp::cpu
