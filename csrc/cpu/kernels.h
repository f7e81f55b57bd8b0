// The per-ISA kernel table. Every kernel works on one chunk of at most FP_CHUNK elements and
// returns the chunk's two sums in double; ops.cpp splits tensors into chunks and reduces.
#pragma once
#include <stdint.h>

#include "fastpenalty/fastpenalty.h"

namespace fp::cpu {

struct ChunkSums {
  double abs = 0.0;  // sum |w|
  double sq = 0.0;   // sum w^2
};

using value_chunk_fn = ChunkSums (*)(const void* w, int64_t n);
// g += grad(w) (both factors may be zero: then g is not touched); returns the chunk's sums of w.
using accumulate_chunk_fn = ChunkSums (*)(const void* w, void* g, int64_t n, double l1, double l2);
using grad_chunk_fn = void (*)(const void* w, void* out, int64_t n, double l1, double l2);
// Bandwidth probes: the same access pattern with the least arithmetic (f32/f64 only).
using probe_add_fn = void (*)(const void* w, void* g, int64_t n);
using probe_sum_fn = double (*)(const void* w, int64_t n);

struct KernelTable {
  const char* name;
  value_chunk_fn value[4];  // indexed by dtype code
  accumulate_chunk_fn accumulate[4];
  grad_chunk_fn grad[4];
  probe_add_fn probe_add[2];
  probe_sum_fn probe_sum[2];
};

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// Only call the table of an ISA the CPU supports: its code may use the ISA's instructions.
const KernelTable& kernel_table_scalar();
const KernelTable& kernel_table_avx2();
const KernelTable& kernel_table_avx512();

Isa best_supported_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* out);

// The table in use (set once from CPUID/XCR0 and FASTPENALTY_ISA, then by set_active_isa).
const KernelTable& active_kernels();
Isa active_isa();
void set_active_isa(Isa isa);

}  // namespace fp::cpu
