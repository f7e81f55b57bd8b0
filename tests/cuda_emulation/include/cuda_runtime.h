// The CUDA runtime and device features that csrc/cuda uses, emulated on the CPU, so that the real
// launchers (multi_tensor.cu, grad.cu, runtime.cu, compiled with g++ -DFP_CUDA_EMULATION) and the
// kernels they launch run here under AddressSanitizer and UBSan.
//
// A block runs as blockDim.x fibers (ucontext) of which exactly one runs at a time: a thread runs until
// it reaches a barrier (__syncthreads, or the warp step inside __shfl_down_sync) and then hands over
// to the runnable thread of highest priority. Priority is by thread index, lowest first or highest
// first (emu::g_reverse): deterministic schedules under which a missing barrier reads shared memory
// before the other warps wrote it. Blocks run one after another; emu::g_block_filter can skip
// blocks (the large-index tests run only the blocks that touch their window of memory).
#pragma once
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __grid_constant__
#define __launch_bounds__(...)
#define __builtin_assume(x) ((void)0)

// alignas(16): UBSan's alignment check then catches a 16-byte access at a misaligned address,
// which faults on a GPU.
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct EmuDim {
  unsigned x = 0, y = 0, z = 0;
};
inline EmuDim threadIdx, blockIdx, gridDim, blockDim;  // set by the scheduler for the running thread

typedef int cudaError_t;
constexpr cudaError_t cudaSuccess = 0, cudaErrorInvalidDevice = 101, cudaErrorNoDevice = 100;
typedef struct EmuStream* cudaStream_t;
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
struct cudaFuncAttributes {
  int numRegs;
};

namespace emu {
inline int g_devices = 1;                 // what cudaGetDeviceCount reports
inline int g_multiprocessors = 3;         // what cudaDeviceGetAttribute reports
inline int g_current = 0;
inline long g_launches = 0;               // kernel launches so far
inline long g_vector_loads = 0;           // 16-byte __ldg loads so far (shows the vector path ran)
inline bool g_reverse = false;            // schedule: highest thread index first
inline std::function<bool(unsigned grid, unsigned block)> g_block_filter;  // empty: run every block

// One block's threads as ucontext fibers on the launching OS thread; the scheduler (run_block)
// resumes the chosen thread until it waits at a barrier or returns.
struct Block {
  enum State { runnable, waiting, done };
  unsigned threads = 0;
  std::vector<ucontext_t> ctx;
  ucontext_t scheduler;
  std::vector<State> state;
  std::vector<int> group_of;     // the barrier group a waiting thread waits on (-1: block, w: warp w)
  std::vector<int> arrived;      // per warp
  int arrived_block = 0;
  std::vector<double> shfl;      // one slot per thread
  std::function<void()> body;    // the kernel call with its arguments
  std::vector<void*> fake_stacks;  // per thread, for the sanitizer
};
inline Block* g_block = nullptr;

// AddressSanitizer is told of every stack switch (its fiber interface), so it checks each
// thread's stack as its own.
inline void* g_scheduler_fake_stack = nullptr;
inline const void* g_scheduler_stack = nullptr;
inline size_t g_scheduler_stack_size = 0;
inline void start_switch(void** fake_stack, const void* bottom, size_t size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack, (void)bottom, (void)size;
#endif
}
inline void finish_switch(void* fake_stack, const void** from_bottom, size_t* from_size) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(fake_stack, from_bottom, from_size);
#else
  (void)fake_stack, (void)from_bottom, (void)from_size;
#endif
}

// Fiber stacks, kept from block to block (a block has at most 1024 threads).
constexpr size_t kStackBytes = size_t(1) << 18;
inline std::vector<std::unique_ptr<char[]>> g_stacks;

// The runnable thread to run next, or -1.
inline int pick() {
  Block& b = *g_block;
  for (unsigned k = 0; k < b.threads; ++k) {
    const unsigned t = g_reverse ? b.threads - 1 - k : k;
    if (b.state[t] == Block::runnable) return int(t);
  }
  return -1;
}

// Arrive at the barrier of `group` (-1: the block; w: warp w) and wait for the others.
inline void barrier(int group) {
  Block& b = *g_block;
  const unsigned self = threadIdx.x;
  b.state[self] = Block::waiting;
  b.group_of[self] = group;
  const unsigned size = group < 0 ? b.threads : 32u;
  int& arrived = group < 0 ? b.arrived_block : b.arrived[group];
  if (unsigned(++arrived) == size) {
    arrived = 0;
    for (unsigned t = 0; t < b.threads; ++t)
      if (b.state[t] == Block::waiting && b.group_of[t] == group) b.state[t] = Block::runnable;
  }
  start_switch(&b.fake_stacks[self], g_scheduler_stack, g_scheduler_stack_size);
  swapcontext(&b.ctx[self], &b.scheduler);
  finish_switch(b.fake_stacks[self], &g_scheduler_stack, &g_scheduler_stack_size);
}

inline void thread_entry() {
  finish_switch(nullptr, &g_scheduler_stack, &g_scheduler_stack_size);
  g_block->body();
  g_block->state[threadIdx.x] = Block::done;
  start_switch(nullptr, g_scheduler_stack, g_scheduler_stack_size);  // returning resumes the scheduler (uc_link)
}

inline void run_block(unsigned block, unsigned threads, std::function<void()> body) {
  Block b;
  b.threads = threads;
  b.ctx.resize(threads);
  b.state.assign(threads, Block::runnable);
  b.group_of.assign(threads, 0);
  b.arrived.assign(threads / 32 + 1, 0);
  b.shfl.assign(threads, 0.0);
  b.body = std::move(body);
  b.fake_stacks.assign(threads, nullptr);
  while (g_stacks.size() < threads) g_stacks.push_back(std::make_unique<char[]>(kStackBytes));
  for (unsigned t = 0; t < threads; ++t) {
    getcontext(&b.ctx[t]);
    b.ctx[t].uc_stack.ss_sp = g_stacks[t].get();
    b.ctx[t].uc_stack.ss_size = kStackBytes;
    b.ctx[t].uc_link = &b.scheduler;
    makecontext(&b.ctx[t], thread_entry, 0);
  }
  g_block = &b;
  blockIdx.x = block;
  for (int t = pick(); t >= 0; t = pick()) {
    threadIdx.x = unsigned(t);
    start_switch(&g_scheduler_fake_stack, g_stacks[t].get(), kStackBytes);
    swapcontext(&b.scheduler, &b.ctx[t]);
    finish_switch(g_scheduler_fake_stack, nullptr, nullptr);
  }
  for (unsigned t = 0; t < threads; ++t)
    if (b.state[t] != Block::done) {
      fprintf(stderr, "emulation: deadlock, thread %u waits at a barrier the others never reach\n", t);
      abort();
    }
  g_block = nullptr;
}
}  // namespace emu

// The launch behind fp::cuda::launch_kernel: the kernel runs here, before the launcher goes on
// (stream order is trivially kept). Arguments are copied as a launch copies them.
template <class... Params, class... Args>
void fp_emulated_launch(void (*kernel)(Params...), unsigned grid, unsigned threads, cudaStream_t, const Args&... args) {
  if (grid == 0 || threads == 0 || threads > 1024 || threads % 32 != 0) {
    fprintf(stderr, "emulation: invalid launch configuration %u x %u\n", grid, threads);
    abort();
  }
  ++emu::g_launches;
  gridDim.x = grid;
  blockDim.x = threads;
  const std::tuple<std::decay_t<Params>...> copied(args...);
  for (unsigned b = 0; b < grid; ++b) {
    if (grid > 1 && emu::g_block_filter && !emu::g_block_filter(grid, b)) continue;
    emu::run_block(b, threads, [&] { std::apply([&](const auto&... a) { kernel(a...); }, copied); });
  }
}

inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = emu::g_devices;
  return emu::g_devices > 0 ? cudaSuccess : cudaErrorNoDevice;
}
inline cudaError_t cudaGetDevice(int* d) {
  *d = emu::g_current;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) {
  if (d < 0 || d >= emu::g_devices) return cudaErrorInvalidDevice;
  emu::g_current = d;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = emu::g_multiprocessors;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}
template <class F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, F) {
  a->numRegs = 0;
  return cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }
inline const char* cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorEmulated"; }

// ---- device functions ----------------------------------------------------------------------------

inline void __syncthreads() { emu::barrier(-1); }

inline double __shfl_down_sync(unsigned mask, double v, int offset) {
  if (mask != 0xffffffffu) {
    fprintf(stderr, "emulation: only full-warp shuffles are emulated\n");
    abort();
  }
  const unsigned t = threadIdx.x, lane = t & 31;
  const int warp = int(t >> 5);
  emu::g_block->shfl[t] = v;
  emu::barrier(warp);
  const double r = lane + unsigned(offset) < 32 ? emu::g_block->shfl[t + offset] : v;
  emu::barrier(warp);
  return r;
}

template <class T>
inline T __ldg(const T* p) {
  if constexpr (sizeof(T) == 16) emu::g_vector_loads += 1;
  return *p;
}
inline int __isGlobal(const void*) { return 1; }
inline float __uint_as_float(unsigned u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  memcpy(&u, &f, 4);
  return u;
}
inline double __longlong_as_double(long long u) {
  double f;
  memcpy(&f, &u, 8);
  return f;
}
inline long long __double_as_longlong(double f) {
  long long u;
  memcpy(&u, &f, 8);
  return u;
}
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __double2float_rn(double d) { return float(d); }  // the default rounding: nearest even
inline float __double2float_rz(double d) {                     // toward zero (for the mutation check)
  const float f = float(d);
  return std::fabs(double(f)) > std::fabs(d) ? std::nextafter(f, 0.0f) : f;
}
