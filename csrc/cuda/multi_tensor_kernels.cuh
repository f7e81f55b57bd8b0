// Device code of the multi-tensor pass over a whole list of tensors in one launch: value
// (l1*sum|w| + l2*sum w^2 with per-tensor factors), accumulate (the same plus g += grad(w)) or
// grad (out = grad(w) for every tensor), and the one-block sum of the per-block partials.
//
// Work split: the list's chunks (tensor_table.h) are numbered globally and block b owns one
// contiguous run of them, fixed by the grid size and the chunk count alone, so a block meets each
// tensor as one contiguous segment and looks up the table once per segment. Within a chunk every
// thread strides through 16-byte vectors (or single elements where the tensor's addresses are not
// 16-byte aligned) and sums |w| and w^2 in the compute type; at each chunk's end it folds
// l1*sum|w| + l2*sum w^2 into a float64 running sum. There are no atomics: every addition happens
// in an order fixed by the launch geometry, so the value is bit-identical from run to run.
#pragma once
#include <stdint.h>

#include "common/penalty_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/element_format.cuh"
#include "cuda/launch_geometry.h"
#include "cuda/tensor_table.h"

namespace fp::cuda::kernels {

constexpr int kUnroll = 4;  // 16-byte loads in flight per thread and operand

struct PassArgs {
  const TensorEntry* entries;
  const int64_t* chunk_begin;  // num_tensors + 1 entries
  int64_t num_tensors;
  int64_t total_chunks;
  const double* l1s;
  const double* l2s;
  int64_t l1_step;  // 0: one factor for every tensor; 1: one per tensor
  int64_t l2_step;
  double* partials;  // one per block
};

// What a pass does besides reading w: value only; g += grad(w) and the value; out = grad(w) (the
// table's gradient addresses are then outputs, and no value is formed).
enum class Mode : int { value = 0, accumulate = 1, overwrite = 2 };

template <Mode M>
constexpr bool kWrites = M != Mode::value;
template <Mode M>
constexpr bool kSums = M != Mode::overwrite;

// This thread's share of one chunk of `len` (<= kChunk) elements at w (and g): adds |w| and w^2
// into s1 and s2 (unless M is overwrite) and writes g += grad(w) (accumulate) or g = grad(w)
// (overwrite) for the factor switches L1/L2.
template <class F, Mode M, bool L1, bool L2>
__device__ __forceinline__ void chunk_share(const typename F::Bits* __restrict__ w, typename F::Bits* __restrict__ g,
                                            int len, bool vector_ok, typename F::Acc l1, typename F::Acc two_l2,
                                            typename F::Acc& s1, typename F::Acc& s2) {
  using A = typename F::Acc;
  constexpr int V = F::kLanes;
  // The table's addresses reach the kernel as integers; telling the compiler they are global lets
  // it emit global (LDG/STG) rather than generic accesses.
  __builtin_assume(__isGlobal(w));
  if constexpr (kWrites<M>) __builtin_assume(__isGlobal(g));
  int scalar_from = 0;
  if (vector_ok) {
    const int nv = len / V;
    const uint4* __restrict__ wv = reinterpret_cast<const uint4*>(w);
    uint4* __restrict__ gv = reinterpret_cast<uint4*>(g);
    for (int base = threadIdx.x; base < nv; base += kThreads * kUnroll) {
      uint4 wr[kUnroll];
      uint4 gr[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int i = base + k * kThreads;
        if (i < nv) {
          wr[k] = __ldg(wv + i);
          if constexpr (M == Mode::accumulate) gr[k] = gv[i];
        }
      }
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int i = base + k * kThreads;
        if (i < nv) {
          const Lanes<F> x = unpack<F>(wr[k]);
          Lanes<F> y;
          if constexpr (M == Mode::accumulate) y = unpack<F>(gr[k]);
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const A xj = F::load(x.v[j]);
            if constexpr (kSums<M>) {
              s1 += F::magnitude(xj);
              s2 = mul_add(xj, xj, s2);
            }
            if constexpr (M == Mode::accumulate)
              y.v[j] = F::store(F::load(y.v[j]) + fp_grad_term<L1, L2>(xj, l1, two_l2));
            if constexpr (M == Mode::overwrite) y.v[j] = F::store(fp_grad_term<L1, L2>(xj, l1, two_l2));
          }
          if constexpr (kWrites<M>) gv[i] = pack<F>(y);
        }
      }
    }
    scalar_from = nv * V;
  }
  for (int i = scalar_from + int(threadIdx.x); i < len; i += kThreads) {
    const A xi = F::load(__ldg(w + i));
    if constexpr (kSums<M>) {
      s1 += F::magnitude(xi);
      s2 = mul_add(xi, xi, s2);
    }
    if constexpr (M == Mode::accumulate) g[i] = F::store(F::load(g[i]) + fp_grad_term<L1, L2>(xi, l1, two_l2));
    if constexpr (M == Mode::overwrite) g[i] = F::store(fp_grad_term<L1, L2>(xi, l1, two_l2));
  }
}

// This thread's share of elements [first, last) of one tensor, chunk by chunk (first is a multiple
// of kChunk, so 16-byte alignment carries over from the tensor's base). Returns its part of
// l1*sum|w| + l2*sum w^2 in float64 (0 when M is overwrite).
template <class F, Mode M, bool L1, bool L2>
__device__ __forceinline__ double segment_share(const TensorEntry& e, int64_t first, int64_t last, double l1,
                                                double l2) {
  using Bits = typename F::Bits;
  using A = typename F::Acc;
  const Bits* w = reinterpret_cast<const Bits*>(static_cast<uintptr_t>(e.w));
  Bits* g = kWrites<M> ? reinterpret_cast<Bits*>(static_cast<uintptr_t>(e.g)) : nullptr;
  const A l1c = A(l1), two_l2c = A(2.0 * l2);  // the factors in the compute type, as on the CPU
  const bool vector_ok = e.vector_ok != 0;
  double sum = 0.0;
  for (int64_t start = first; start < last; start += kChunk) {
    const int64_t left = last - start;
    const int len = int(left < kChunk ? left : kChunk);
    A s1 = A(0), s2 = A(0);
    chunk_share<F, M, L1, L2>(w + start, kWrites<M> ? g + start : nullptr, len, vector_ok, l1c, two_l2c, s1, s2);
    if constexpr (kSums<M>) sum += fp_combine<double>(double(s1), double(s2), l1, l2);
  }
  return sum;
}

// Picks the factor switches. For value and accumulate the caller skips segments whose factors are
// both 0 (nothing to add, nothing to write); overwrite writes zeros there.
template <class F, Mode M>
__device__ __forceinline__ double segment_for_factors(const TensorEntry& e, int64_t first, int64_t last, double l1,
                                                      double l2) {
  if constexpr (M == Mode::value) {
    return segment_share<F, M, false, false>(e, first, last, l1, l2);
  } else {
    if (l1 != 0.0 && l2 != 0.0) return segment_share<F, M, true, true>(e, first, last, l1, l2);
    if (l1 != 0.0) return segment_share<F, M, true, false>(e, first, last, l1, l2);
    if (l2 != 0.0) return segment_share<F, M, false, true>(e, first, last, l1, l2);
    if constexpr (M == Mode::overwrite) return segment_share<F, M, false, false>(e, first, last, l1, l2);
    return 0.0;
  }
}

template <Mode M>
__device__ double segment_any_dtype(const TensorEntry& e, int64_t first, int64_t last, double l1, double l2) {
  switch (e.dtype) {
    case FP_FLOAT32:
      return segment_for_factors<Format<FP_FLOAT32>, M>(e, first, last, l1, l2);
    case FP_FLOAT64:
      return segment_for_factors<Format<FP_FLOAT64>, M>(e, first, last, l1, l2);
    case FP_FLOAT16:
      return segment_for_factors<Format<FP_FLOAT16>, M>(e, first, last, l1, l2);
    case FP_BFLOAT16:
      return segment_for_factors<Format<FP_BFLOAT16>, M>(e, first, last, l1, l2);
    default:  // fill_table rejects other codes; a corrupted table shows up as NaN, not as a write
      return __longlong_as_double(0x7ff8000000000000LL);
  }
}

// The tensor holding chunk c (0 <= c < total): the largest t < num_tensors with
// chunk_begin[t] <= c. Such a t owns at least one chunk, since chunk_begin[t + 1] > c.
__device__ __forceinline__ int64_t tensor_of_chunk(const int64_t* chunk_begin, int64_t num_tensors, int64_t c) {
  int64_t lo = 0, hi = num_tensors;  // chunk_begin[lo] <= c; hi == num_tensors or chunk_begin[hi] > c
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (chunk_begin[mid] <= c) lo = mid;
    else hi = mid;
  }
  return lo;
}

template <Mode M>
__global__ void __launch_bounds__(kThreads, kPassBlocksPerSm) multi_tensor_pass(const PassArgs a) {
  // Block b owns chunks [c, c_end): an even split, the first (total % blocks) blocks one more.
  const int64_t blocks = gridDim.x;
  const int64_t b = blockIdx.x;
  const int64_t per_block = a.total_chunks / blocks;
  const int64_t extra = a.total_chunks % blocks;
  int64_t c = b * per_block + (b < extra ? b : extra);
  const int64_t c_end = c + per_block + (b < extra ? 1 : 0);
  double sum = 0.0;
  if (c < c_end) {
    int64_t t = tensor_of_chunk(a.chunk_begin, a.num_tensors, c);
    while (c < c_end) {
      int64_t next = a.chunk_begin[t + 1];
      while (next <= c) {  // steps over empty tensors; chunk_begin[num_tensors] = total > c stops it
        ++t;
        next = a.chunk_begin[t + 1];
      }
      const int64_t stop = next < c_end ? next : c_end;
      const double l1 = a.l1s[t * a.l1_step];
      const double l2 = a.l2s[t * a.l2_step];
      if (M == Mode::overwrite || l1 != 0.0 || l2 != 0.0) {
        const TensorEntry e = a.entries[t];
        const int64_t begin = a.chunk_begin[t];
        const int64_t first = (c - begin) * kChunk;
        const int64_t last = (stop - begin) * kChunk;  // one past; the tensor's last chunk may be short
        sum += segment_any_dtype<M>(e, first, last < e.n ? last : e.n, l1, l2);
      }
      c = stop;
    }
  }
  if constexpr (kSums<M>) {
    sum = block_sum<kThreads>(sum);
    if (threadIdx.x == 0) a.partials[blockIdx.x] = sum;
  }
}

// One block adds the partials in a fixed order and writes the value in the output's precision.
__global__ void __launch_bounds__(kThreads) sum_partials(const double* __restrict__ partials, int64_t count,
                                                         void* out, bool out_f64) {
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) sum += partials[i];
  sum = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) {
    if (out_f64) *static_cast<double*>(out) = sum;
    else *static_cast<float*>(out) = __double2float_rn(sum);
  }
}

}  // namespace fp::cuda::kernels
