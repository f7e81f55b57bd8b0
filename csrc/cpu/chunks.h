// The work split shared by every multi-tensor entry point (ops.cpp, prox_ops.cpp): each tensor is
// cut into chunks of FP_CHUNK elements from its start, chunks are numbered across the list, and
// the pool's parts claim short runs of those numbers in turn until none are left. A kernel writes
// each chunk's result to the chunk's own slot and the caller adds the slots in chunk order, so
// results depend neither on the thread count nor on which part ran a chunk.
#pragma once
#include <stdint.h>

#include <algorithm>
#include <atomic>
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

// The chunks of one call not yet claimed. Parts claim runs of chunks as they go rather than each
// taking a fixed share, so a part whose thread is slowed takes fewer and none waits on another.
// Measured on a 2-core AMD EPYC (Zen 3) with torch in the process: after a torch op, torch's
// OpenMP worker keeps spinning on one core for milliseconds, and with a fixed half each the
// float32 value ran at 0.74 of torch.sum, against 0.84 claimed this way
// (bench/results/ab_chunk_claims_value_torchprobe.csv).
struct ChunkClaims {
  std::atomic<int64_t> next{0};
};

// Chunks per claim: at most 64 (4 MB of float32), short enough that every part gets at least 8
// claims. Each claim starts a new stream for the hardware prefetchers: on the AMD EPYC with
// AVX-512, runs of at most 8 chunks held the 16-bit value at 0.94 of torch.sum against 0.99
// with 64 (bench/results/ab_avx512_value_torchprobe.csv).
inline int64_t chunks_per_claim(int64_t chunks, int parts) {
  return std::clamp<int64_t>(chunks / (int64_t(std::max(parts, 1)) * 8), 1, 64);
}

// Calls f(t, chunk, offset, len) for every chunk this part claims (tensor t, elements
// [offset, offset + len) of it), until every chunk of the call is claimed.
template <class F>
void for_each_claimed_chunk(const std::vector<int64_t>& first, const int64_t* ns, int parts, ChunkClaims& claims,
                            F&& f) {
  const int64_t total = first.back();
  const int64_t run = chunks_per_claim(total, parts);
  for (;;) {
    const int64_t begin = claims.next.fetch_add(run, std::memory_order_relaxed);
    if (begin >= total) return;
    const int64_t end = std::min(total, begin + run);
    int64_t t = std::upper_bound(first.begin(), first.end(), begin) - first.begin() - 1;
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      while (chunk >= first[size_t(t) + 1]) ++t;
      const int64_t offset = (chunk - first[size_t(t)]) * FP_CHUNK;
      f(t, chunk, offset, std::min<int64_t>(FP_CHUNK, ns[t] - offset));
    }
  }
}

}  // namespace fp::cpu
