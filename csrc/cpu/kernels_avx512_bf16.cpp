// bf16 gradients narrowed with AVX512_BF16's vcvtneps2bf16 (round to nearest even, like the
// software narrowing). The instruction flushes fp32 subnormals to zero, so a register holding one
// (rare: |x| < 2^-126) is narrowed in software instead. Compiled with -mavx512bf16; installed into
// the avx512 table only where CPUID says the CPU has it.
#include "cpu/avx512_traits.h"

namespace fp::cpu {
namespace {

struct Avx512BF16Native : Avx512Half<Avx512BF16Native> {
  static constexpr int32_t kDtype = FP_BFLOAT16;
  static R widen(__m256i h) { return Avx512BF16::widen(h); }
  static __m256i narrow(R r) {
    const __m256i fast = (__m256i)_mm512_cvtneps_pbh(r);
    const __mmask16 subnormal = _mm512_fpclass_ps_mask(r, 0x20);  // class bit 5: denormal
    return subnormal ? _mm256_mask_mov_epi16(fast, subnormal, Avx512BF16::narrow(r)) : fast;
  }
};

}  // namespace

void use_native_bf16_narrowing(KernelTable& table) {
  table.accumulate[FP_BFLOAT16] = loops::accumulate_chunk<Avx512BF16Native>;
  table.grad[FP_BFLOAT16] = loops::grad_chunk<Avx512BF16Native>;
}

}  // namespace fp::cpu
