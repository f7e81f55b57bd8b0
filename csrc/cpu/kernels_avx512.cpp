// AVX-512 (F, BW, VL, DQ) kernels. Compiled with those flags; only reached after CPUID/XCR0 say
// the CPU and OS support them. Every dtype's tail is a masked load/store. Where the CPU has
// AVX512_BF16, bf16 gradients are narrowed with vcvtne2ps2bf16 (kernels_avx512_bf16.cpp).
#include "cpu/avx512_traits.h"
#include "cpu/prox_lanes_avx512.h"

namespace fp::cpu {

const KernelTable& kernel_table_avx512() {
  static const KernelTable table = [] {
    KernelTable t = loops::make_table<Avx512F32, Avx512F64, Avx512F16, Avx512BF16>("avx512");
    // bf16 on the even/odd halves (no cross-lane widening or narrowing; the value loop clears
    // the sign bits of 32 elements at once)
    t.value[FP_BFLOAT16] = loops::value_chunk<Avx512BF16Software>;
    t.accumulate[FP_BFLOAT16] = loops::accumulate_chunk<Avx512BF16Software>;
    t.grad[FP_BFLOAT16] = loops::grad_chunk<Avx512BF16Software>;
    t = loops::with_prox<Avx512F32, Avx512F64, Avx512F16, Avx512BF16, Avx512BF16Software>(t);
    if (cpu_has_avx512_bf16()) use_native_bf16_narrowing(t);
    return t;
  }();
  return table;
}

}  // namespace fp::cpu
