// Host emulation of the few CUDA device features the fastpenalty kernels use, for
// emulate_kernels.cpp: each block runs as blockDim.x std::threads with real barriers, so
// __syncthreads and warp shuffles behave; blocks run one after another. 16-byte loads through
// __ldg abort when misaligned, as they would fault on a GPU.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_types.h>

#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)
#define __builtin_assume(x) ((void)0)

struct EmuDim { unsigned x = 0, y = 0, z = 0; };
inline thread_local EmuDim threadIdx, blockIdx;
inline EmuDim gridDim, blockDim;

struct EmuBlock {
  std::unique_ptr<std::barrier<>> block;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<double> shfl;  // one slot per thread
};
inline EmuBlock g_emu;

inline void __syncthreads() { g_emu.block->arrive_and_wait(); }

inline double __shfl_down_sync(unsigned, double v, int offset) {
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  g_emu.shfl[t] = v;
  g_emu.warps[warp]->arrive_and_wait();
  const double r = lane + offset < 32 ? g_emu.shfl[t + offset] : v;
  g_emu.warps[warp]->arrive_and_wait();
  return r;
}

inline long g_vector_loads = 0;  // counted only to prove the vector path ran
template <class T>
inline T __ldg(const T* p) {
  if constexpr (sizeof(T) == 16) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) { fprintf(stderr, "misaligned 16-byte load\n"); abort(); }
    __atomic_add_fetch(&g_vector_loads, 1, __ATOMIC_RELAXED);
  }
  return *p;
}
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline double __longlong_as_double(long long u) { double f; memcpy(&f, &u, 8); return f; }
inline long long __double_as_longlong(double f) { long long u; memcpy(&u, &f, 8); return u; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __double2float_rn(double d) { return (float)d; }
inline int __isGlobal(const void*) { return 1; }

// Runs kernel(args...) over grid x threads, one block after another.
template <class K, class... Args>
void emu_launch(unsigned grid, unsigned threads, K kernel, Args... args) {
  gridDim.x = grid;
  blockDim.x = threads;
  for (unsigned b = 0; b < grid; ++b) {
    g_emu.block = std::make_unique<std::barrier<>>(threads);
    g_emu.warps.clear();
    for (unsigned w = 0; w < threads / 32; ++w) g_emu.warps.push_back(std::make_unique<std::barrier<>>(32));
    g_emu.shfl.assign(threads, 0.0);
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < threads; ++t)
      ts.emplace_back([=] {
        blockIdx.x = b;
        threadIdx.x = t;
        kernel(args...);
      });
    for (auto& th : ts) th.join();
  }
}
