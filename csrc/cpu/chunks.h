// The work split shared by every multi-tensor entry point (ops.cpp, prox_ops.cpp): each tensor is
// cut into chunks of FP_CHUNK elements from its start, chunks are numbered across the list, and
// the pool's parts take contiguous runs of those numbers. A kernel writes each chunk's result to
// the chunk's own slot and the caller adds the slots in chunk order, so results do not depend on
// the thread count.
#pragma once
#include <stdint.h>

#include <algorithm>
#include <new>
#include <vector>

#include "cpu/thread_pool.h"
#include "fastpenalty/fastpenalty_experimental.h"

namespace fp::cpu {

// Test hook (fp_experimental_fail_next_allocations): whether this chunk-table allocation must fail.
bool allocation_must_fail();

// Below this many elements waking the workers costs more than it saves.
constexpr int64_t kParallelMinElements = int64_t(1) << 17;

// first[t]: the number of tensor t's first chunk; first[count]: the number of chunks. Throws
// std::bad_alloc (also when the test hook says so).
inline void number_chunks(std::vector<int64_t>& first, int64_t count, const int64_t* ns) {
  if (allocation_must_fail()) throw std::bad_alloc();
  first.resize(size_t(count) + 1);
  int64_t chunks = 0;
  for (int64_t t = 0; t < count; ++t) {
    first[size_t(t)] = chunks;
    chunks += (ns[t] + FP_CHUNK - 1) / FP_CHUNK;
  }
  first[size_t(count)] = chunks;
}

// How many parts to run: one for small calls, else one per thread (at most one per chunk).
inline int parts_for(const std::vector<int64_t>& first, int64_t count, const int64_t* ns) {
  int64_t elements = 0;
  for (int64_t t = 0; t < count; ++t) elements += ns[t];
  const int64_t chunks = first.back();
  return elements < kParallelMinElements ? 1 : int(std::min<int64_t>(pool_num_threads(), chunks));
}

// Calls f(t, chunk, offset, len) for every chunk of `part` (of `parts`): tensor t, elements
// [offset, offset + len) of it.
template <class F>
void for_each_chunk_of_part(const std::vector<int64_t>& first, const int64_t* ns, int part, int parts, F&& f) {
  const int64_t total = first.back();
  const int64_t begin = total * part / parts, end = total * (part + 1) / parts;
  if (begin >= end) return;
  int64_t t = std::upper_bound(first.begin(), first.end(), begin) - first.begin() - 1;
  for (int64_t chunk = begin; chunk < end; ++chunk) {
    while (chunk >= first[size_t(t) + 1]) ++t;
    const int64_t offset = (chunk - first[size_t(t)]) * FP_CHUNK;
    f(t, chunk, offset, std::min<int64_t>(FP_CHUNK, ns[t] - offset));
  }
}

}  // namespace fp::cpu
