// bf16 gradients narrowed with AVX512_BF16's vcvtne2ps2bf16 (round to nearest even, like the
// software narrowing): one instruction converts both halves of an Avx512BF16Pairs register, one
// vpermw puts the even and odd elements back in place. The instruction flushes fp32 subnormals to
// zero, so a register holding one (rare: |x| < 2^-126) is narrowed in software instead. Compiled
// with -mavx512bf16; installed into the avx512 table only where CPUID says the CPU has it.
#include "cpu/avx512_traits.h"

namespace fp::cpu {
namespace {

struct NativeBF16Narrowing {
  // word 2k of the result from word k of the packed pair (the even half), 2k+1 from word 16+k
  static __m512i interleave() {
    alignas(64) static const uint16_t index[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                   8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return _mm512_load_si512(index);
  }
  static __m512i narrow(__m512 even, __m512 odd) {
    const __mmask16 subnormal = _mm512_fpclass_ps_mask(even, 0x20) | _mm512_fpclass_ps_mask(odd, 0x20);
    if (subnormal) return SoftwareBF16Narrowing::narrow(even, odd);
    const __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(odd, even);  // words 0-15: even, 16-31: odd
    return _mm512_permutexvar_epi16(interleave(), packed);
  }
};

using Avx512BF16Native = Avx512BF16Pairs<NativeBF16Narrowing>;

}  // namespace

void use_native_bf16_narrowing(KernelTable& table) {
  table.accumulate[FP_BFLOAT16] = loops::accumulate_chunk<Avx512BF16Native>;
  table.grad[FP_BFLOAT16] = loops::grad_chunk<Avx512BF16Native>;
}

}  // namespace fp::cpu
