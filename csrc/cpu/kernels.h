// The per-ISA kernel table. Every kernel works on one chunk of at most FP_CHUNK elements and
// returns the chunk's two sums in double; ops.cpp splits tensors into chunks and reduces.
#pragma once
#include <stdint.h>

#include "fastpenalty/fastpenalty_experimental.h"  // FP_CHUNK

namespace fp::cpu {

// The two sums of a block, chunk or tensor. `scale` is nonzero only where a float64 block's plain
// sums would overflow (|w| > ~1e154) or lose their digits to underflow: then the sums are of
// w * 2^-scale. Partials are added in a fixed order, so the result stays deterministic.
struct ChunkSums {
  double abs = 0.0;  // sum |w| * 2^-scale
  double sq = 0.0;   // sum w^2 * 2^-(2 * scale)
  int scale = 0;
};

// total += s where the scales differ: at the larger one (a zero sum takes the other's scale).
void add_rescaled_sums(ChunkSums& total, const ChunkSums& s);

inline void add_sums(ChunkSums& total, const ChunkSums& s) {
  if (total.scale != s.scale) return add_rescaled_sums(total, s);
  total.abs += s.abs;
  total.sq += s.sq;
}
// l1 * sum|w| + l2 * sum w^2 of sums at any scale, without overflow where the result is finite.
double combine_sums(const ChunkSums& s, double l1, double l2);

// Whether a block's sums in the compute type C (float or double) can be trusted: finite, and not
// so small that squares of its weights lost their digits to underflow.
template <class C>
inline bool block_sums_ok(const ChunkSums& s) {
  constexpr double tiny_sq = sizeof(C) == 4 ? 0x1p-80 : 0x1p-900;
  return s.abs - s.abs == 0.0 && s.sq - s.sq == 0.0 && !(s.sq < tiny_sq && s.abs != 0.0);
}

// The sums of one block of at most a few thousand elements redone in double (float64: scaled by a
// power of two), for the blocks block_sums_ok refuses. Compiled without ISA flags.
ChunkSums exact_block_sums(const void* w, int64_t n, int32_t dtype);

using value_chunk_fn = ChunkSums (*)(const void* w, int64_t n);
// g += grad(w) (both factors may be zero: then g is not touched); returns the chunk's sums of w.
using accumulate_chunk_fn = ChunkSums (*)(const void* w, void* g, int64_t n, double l1, double l2);
using grad_chunk_fn = void (*)(const void* w, void* out, int64_t n, double l1, double l2);
// The proximal step in place (penalty_math.h; lr, l1, l2 already checked): returns the chunk's
// sums of the new weights, as value_chunk_fn would, and adds their count of zeros to *zeros.
using prox_chunk_fn = ChunkSums (*)(void* w, int64_t n, double lr, double l1, double l2, int64_t* zeros);
// Bandwidth probes: the same access pattern with the least arithmetic (f32/f64 only).
using probe_add_fn = void (*)(const void* w, void* g, int64_t n);
using probe_sum_fn = double (*)(const void* w, int64_t n);

struct KernelTable {
  const char* name;
  value_chunk_fn value[4];  // indexed by dtype code
  accumulate_chunk_fn accumulate[4];
  grad_chunk_fn grad[4];
  prox_chunk_fn prox[4];  // cpu/prox_loops.h
  probe_add_fn probe_add[2];
  probe_sum_fn probe_sum[2];
};

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// Only call the table of an ISA the CPU supports: its code may use the ISA's instructions.
const KernelTable& kernel_table_scalar();
const KernelTable& kernel_table_avx2();
const KernelTable& kernel_table_avx512();

// AVX512_BF16 (vcvtne2ps2bf16), within the AVX-512 tier: the avx512 table then narrows bf16
// gradients with it (same rounding as the other paths), through use_native_bf16_narrowing.
bool cpu_has_avx512_bf16();
void use_native_bf16_narrowing(KernelTable& table);

Isa best_supported_isa();
bool isa_supported(Isa isa);
const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* out);

// The table in use (set once from CPUID/XCR0 and FASTPENALTY_ISA, then by set_active_isa).
const KernelTable& active_kernels();
Isa active_isa();
void set_active_isa(Isa isa);

}  // namespace fp::cpu
