// Run-time ISA selection: CPUID says what the CPU has, XCR0 says which register state the OS saves
// (AVX needs YMM, AVX-512 also the opmask and ZMM state). FASTPENALTY_ISA caps the choice.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "cpu/config.h"
#include "cpu/kernels.h"

#if FASTPENALTY_X86_KERNELS
#include <cpuid.h>
#endif

namespace fp::cpu {
namespace {

#if FASTPENALTY_X86_KERNELS
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;
  bool avx512_bf16 = false;
};

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12), f16c = c & (1u << 29);
  if (!(osxsave && avx)) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));
  f.avx2 = ymm_state && avx2 && fma && f16c;
  f.avx512 = f.avx2 && zmm_state && avx512;
  if (f.avx512 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx512_bf16 = a & (1u << 5);
  return f;
}
#endif

const KernelTable& table_for(Isa isa) {
  switch (isa) {
#if FASTPENALTY_X86_KERNELS
    case Isa::avx512:
      return kernel_table_avx512();
    case Isa::avx2:
      return kernel_table_avx2();
#endif
    default:
      return kernel_table_scalar();
  }
}

std::atomic<const KernelTable*> g_table{nullptr};
std::atomic<int> g_isa{0};
std::once_flag g_init;

void init_from_cpu_and_env() {
  Isa isa = best_supported_isa();
  if (const EnvConfig& env = env_config(); env.has_isa_cap && int(env.isa_cap) < int(isa)) isa = env.isa_cap;
  g_isa.store(int(isa));
  g_table.store(&table_for(isa));
}

}  // namespace

Isa best_supported_isa() {
#if FASTPENALTY_X86_KERNELS
  static const CpuFeatures f = detect();
  if (f.avx512) return Isa::avx512;
  if (f.avx2) return Isa::avx2;
#endif
  return Isa::scalar;
}

bool cpu_has_avx512_bf16() {
#if FASTPENALTY_X86_KERNELS
  static const CpuFeatures f = detect();
  return f.avx512_bf16;
#else
  return false;
#endif
}

bool isa_supported(Isa isa) { return int(isa) <= int(best_supported_isa()); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

bool isa_from_name(const char* name, Isa* out) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (std::strcmp(name, isa_name(isa)) == 0) {
      *out = isa;
      return true;
    }
  }
  return false;
}

const KernelTable& active_kernels() {
  std::call_once(g_init, init_from_cpu_and_env);
  return *g_table.load();
}

Isa active_isa() {
  std::call_once(g_init, init_from_cpu_and_env);
  return Isa(g_isa.load());
}

void set_active_isa(Isa isa) {
  std::call_once(g_init, init_from_cpu_and_env);
  g_table.store(&table_for(isa));
  g_isa.store(int(isa));
}

}  // namespace fp::cpu
