// Launch geometry shared by the kernels and their launchers.
#pragma once
#include <stdint.h>

namespace fp::cuda {

constexpr int kThreads = 256;  // threads per block of every kernel

// Grids are sized to fill each multiprocessor with this many blocks (the multi-tensor kernel is
// compiled for that occupancy: __launch_bounds__(kThreads, kPassBlocksPerSm)).
constexpr int kPassBlocksPerSm = 4;
constexpr int kGradBlocksPerSm = 8;

// Upper bound on the multi-tensor grid (and on its scratch of one double per block).
constexpr int64_t kMaxBlocks = int64_t(1) << 20;

}  // namespace fp::cuda
