// Launch geometry shared by the kernels and their launchers.
#pragma once
#include <stdint.h>

namespace fp::cuda {

constexpr int kThreads = 256;  // threads per block of every kernel

// Grids are sized to fill each multiprocessor with this many blocks (the multi-tensor kernel is
// compiled for that occupancy: __launch_bounds__(kThreads, kPassBlocksPerSm), a budget of 80
// registers a thread, under which ptxas reports no spills).
constexpr int kPassBlocksPerSm = 3;
constexpr int kGradBlocksPerSm = 8;

// Upper bound on the grid of one multi-tensor launch (and on its scratch of one double per block).
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

// Blocks of one multi-tensor launch over `chunks` chunks: a pure function of the device's
// multiprocessor count and the chunk count, which fixes the reduction order, and so the value.
constexpr int64_t pass_grid(int64_t chunks, int multiprocessors) {
  const int64_t cap = int64_t(multiprocessors) * kPassBlocksPerSm;
  const int64_t g = chunks < cap ? chunks : cap;
  return g < kMaxBlocks ? g : kMaxBlocks;
}

}  // namespace fp::cuda
