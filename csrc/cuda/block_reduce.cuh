// Deterministic block sum: a fixed tree of warp shuffles, then the warp sums in warp order. The
// order of additions depends only on the block size, never on timing, so a sum is bit-identical
// from run to run.
#pragma once

namespace fp::cuda {

// Every thread of the block must call it (it synchronizes); the sum is valid in thread 0.
template <int kThreads>
__device__ __forceinline__ double block_sum(double v) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps, at most 32 of them");
  constexpr int kWarps = kThreads / 32;
  __shared__ double warp_sums[kWarps];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  double s = 0.0;
  if (warp == 0) {
    s = lane < kWarps ? warp_sums[lane] : 0.0;
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) s += __shfl_down_sync(0xffffffffu, s, offset);
  }
  return s;
}

}  // namespace fp::cuda
