// Device code of the multi-tensor pass over one slice of a list (up to kSlots tensors, the table
// by value): value (l1*sum|w| + l2*sum w^2 with per-tensor factors), accumulate (the same plus
// g += grad(w)) or grad (out = grad(w) for every tensor), and the one-block sum of the per-block
// partials of all the slices' launches.
//
// Work split: the slice's chunks (tensor_table.h) are numbered and block b owns one contiguous
// run of them, fixed by the grid size and the chunk count alone, so a block meets each tensor as
// one contiguous segment. Within a chunk every thread strides through 16-byte vectors (or single
// elements where the tensor's addresses are not 16-byte aligned) and sums |w| and w^2 in the
// compute type; at each chunk's end it folds l1*sum|w| + l2*sum w^2 into a float64 running sum.
// There are no atomics: every addition happens in an order fixed by the launch geometry, so the
// value is bit-identical from run to run.
#pragma once
#include <stdint.h>

#include "common/penalty_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/element_format.cuh"
#include "cuda/launch_geometry.h"
#include "cuda/tensor_table.h"

namespace fp::cuda::kernels {

constexpr int kUnroll = 4;  // 16-byte loads in flight per thread and operand

// The kernel's parameter (by value; see tensor_table.h).
struct PassArgs {
  const double* l1s;  // this slice's first factor (or the one shared factor)
  const double* l2s;
  int64_t l1_step;    // 0: one factor for every tensor; 1: one per tensor
  int64_t l2_step;
  double* partials;   // this launch's partials, one per block
  TensorTable table;
};

// What a pass does besides reading w: value only; g += grad(w) and the value; out = grad(w) (the
// table's gradient addresses are then outputs, and no value is formed).
enum class Mode : int { value = 0, accumulate = 1, overwrite = 2 };

template <Mode M>
constexpr bool kWrites = M != Mode::value;
template <Mode M>
constexpr bool kSums = M != Mode::overwrite;

__device__ __forceinline__ float magnitude(float x) { return fabsf(x); }
__device__ __forceinline__ double magnitude(double x) { return fabs(x); }

// This thread's share of one chunk of `len` elements at w (and g): adds |w| and w^2 into s1 and s2
// (unless M is overwrite) and writes g += grad(w) (accumulate) or g = grad(w) (overwrite) for the
// factor switches L1/L2.
template <class F, Mode M, bool L1, bool L2>
__device__ __forceinline__ void chunk_share(const typename F::Bits* __restrict__ w, typename F::Bits* __restrict__ g,
                                            int len, bool vector_ok, double l1, double two_l2, bool narrow,
                                            typename F::Acc& s1, typename F::Acc& s2) {
  using A = typename F::Acc;
  constexpr int V = F::kLanes;
  constexpr bool kAcc = M == Mode::accumulate;
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
          if constexpr (kAcc) gr[k] = gv[i];
        }
      }
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int i = base + k * kThreads;
        if (i < nv) {
          const Lanes<F> x = unpack<F>(wr[k]);
          Lanes<F> y;
          if constexpr (kAcc) y = unpack<F>(gr[k]);
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const A xj = F::load(x.v[j]);
            if constexpr (kSums<M>) {
              s1 += magnitude(xj);
              s2 = mul_add(xj, xj, s2);
            }
            if constexpr (kWrites<M>) y.v[j] = grad_element<F, L1, L2, kAcc>(xj, kAcc ? y.v[j] : 0, l1, two_l2, narrow);
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
      s1 += magnitude(xi);
      s2 = mul_add(xi, xi, s2);
    }
    if constexpr (kWrites<M>) g[i] = grad_element<F, L1, L2, kAcc>(xi, kAcc ? g[i] : 0, l1, two_l2, narrow);
  }
}

// Calls chunk(start, len) for chunks [c0, c1) of tensor e: its elements [c0 * chunk, c1 * chunk),
// cut at its end, chunk by chunk. A chunk starts at a multiple of its length, so 16-byte
// alignment carries over from the tensor's base. (The proximal step walks its chunks here too.)
template <class F, class Chunk>
__device__ __forceinline__ void for_each_chunk(const TensorEntry& e, int64_t c0, int64_t c1, Chunk&& chunk) {
  constexpr int64_t kChunk = kChunkBytes / int64_t(sizeof(typename F::Bits));
  const int64_t first = c0 * kChunk;
  const int64_t last = c1 * kChunk < e.n ? c1 * kChunk : e.n;
  for (int64_t start = first; start < last; start += kChunk) {
    const int64_t left = last - start;
    chunk(start, int(left < kChunk ? left : kChunk));
  }
}

// This thread's share of chunks [c0, c1) of one tensor. Returns its part of l1*sum|w| + l2*sum w^2
// in float64, folded chunk by chunk (0 when M is overwrite).
template <class F, Mode M, bool L1, bool L2>
__device__ __forceinline__ double segment_share(const TensorEntry& e, int64_t c0, int64_t c1, double l1, double l2) {
  using Bits = typename F::Bits;
  using A = typename F::Acc;
  const Bits* w = reinterpret_cast<const Bits*>(static_cast<uintptr_t>(e.w));
  Bits* g = kWrites<M> ? reinterpret_cast<Bits*>(static_cast<uintptr_t>(e.g)) : nullptr;
  const double two_l2 = 2.0 * l2;
  const bool narrow = fp_factors_fit_float(l1, l2);
  const bool vector_ok = e.vector_ok != 0;
  double sum = 0.0;
  for_each_chunk<F>(e, c0, c1, [&](int64_t start, int len) {
    A s1 = A(0), s2 = A(0);
    chunk_share<F, M, L1, L2>(w + start, kWrites<M> ? g + start : nullptr, len, vector_ok, l1, two_l2, narrow, s1, s2);
    if constexpr (kSums<M>) sum += fp_combine<double>(double(s1), double(s2), l1, l2);
  });
  return sum;
}

// Picks the factor switches. For value and accumulate the caller skips segments whose factors are
// both 0 (nothing to add, nothing to write); overwrite writes zeros there.
template <class F, Mode M>
__device__ __forceinline__ double segment_for_factors(const TensorEntry& e, int64_t c0, int64_t c1, double l1,
                                                      double l2) {
  if constexpr (M == Mode::value) {
    return segment_share<F, M, false, false>(e, c0, c1, l1, l2);
  } else {
    if (l1 != 0.0 && l2 != 0.0) return segment_share<F, M, true, true>(e, c0, c1, l1, l2);
    if (l1 != 0.0) return segment_share<F, M, true, false>(e, c0, c1, l1, l2);
    if (l2 != 0.0) return segment_share<F, M, false, true>(e, c0, c1, l1, l2);
    if constexpr (M == Mode::overwrite) return segment_share<F, M, false, false>(e, c0, c1, l1, l2);
    return 0.0;
  }
}

// body(Format<dtype>()): the segment code instantiated for the tensor's element format.
template <class Body>
__device__ __forceinline__ double with_format(int32_t dtype, Body&& body) {
  switch (dtype) {
    case FP_FLOAT32:
      return body(Format<FP_FLOAT32>());
    case FP_FLOAT64:
      return body(Format<FP_FLOAT64>());
    case FP_FLOAT16:
      return body(Format<FP_FLOAT16>());
    case FP_BFLOAT16:
      return body(Format<FP_BFLOAT16>());
    default:  // validate_list rejects other codes; a corrupted table shows up as NaN, not as a write
      return __longlong_as_double(0x7ff8000000000000LL);
  }
}

template <Mode M>
__device__ double segment_any_dtype(const TensorEntry& e, int64_t c0, int64_t c1, double l1, double l2) {
  return with_format(e.dtype, [&](auto format) { return segment_for_factors<decltype(format), M>(e, c0, c1, l1, l2); });
}

// The slot holding chunk c (0 <= c < total): the largest t < count with chunk_begin[t] <= c. Such
// a t owns at least one chunk, since chunk_begin[t + 1] > c.
__device__ __forceinline__ int64_t slot_of_chunk(const TensorTable& table, int64_t c) {
  int64_t lo = 0, hi = table.count;  // chunk_begin[lo] <= c; hi == count or chunk_begin[hi] > c
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (table.chunk_begin[mid] <= c) lo = mid;
    else hi = mid;
  }
  return lo;
}

// This block's run of the slice's chunks, met tensor by tensor: segment(t, c0, c1) for every slot
// t it touches, with the run's chunks [c0, c1) of that tensor (counted from its start). Block b
// owns chunks [c, c_end): an even split, the first (total % blocks) blocks one more.
template <class Segment>
__device__ __forceinline__ void for_each_segment_of_block(const TensorTable& table, Segment&& segment) {
  const int64_t total = table.chunk_begin[table.count];
  const int64_t blocks = gridDim.x;
  const int64_t b = blockIdx.x;
  const int64_t per_block = total / blocks;
  const int64_t extra = total % blocks;
  int64_t c = b * per_block + (b < extra ? b : extra);
  const int64_t c_end = c + per_block + (b < extra ? 1 : 0);
  if (c >= c_end) return;
  int64_t t = slot_of_chunk(table, c);
  while (c < c_end) {
    int64_t next = table.chunk_begin[t + 1];
    while (next <= c) {  // steps over empty tensors; chunk_begin[count] = total > c stops it
      ++t;
      next = table.chunk_begin[t + 1];
    }
    const int64_t stop = next < c_end ? next : c_end;
    segment(t, c - table.chunk_begin[t], stop - table.chunk_begin[t]);
    c = stop;
  }
}

// __grid_constant__: the table is read in place in parameter space (never copied per thread).
template <Mode M>
__global__ void __launch_bounds__(kThreads, kPassBlocksPerSm) multi_tensor_pass(const __grid_constant__ PassArgs a) {
  double sum = 0.0;
  for_each_segment_of_block(a.table, [&](int64_t t, int64_t c0, int64_t c1) {
    const double l1 = a.l1s[t * a.l1_step];
    const double l2 = a.l2s[t * a.l2_step];
    if (M == Mode::overwrite || l1 != 0.0 || l2 != 0.0) sum += segment_any_dtype<M>(a.table.entries[t], c0, c1, l1, l2);
  });
  if constexpr (kSums<M>) {
    sum = block_sum<kThreads>(sum);
    if (threadIdx.x == 0) a.partials[blockIdx.x] = sum;
  }
}

// The sum of partials[0, count) in a fixed order (thread i adds i, i + kThreads, ... then the
// block sum); every thread of the block calls it, the sum is valid in thread 0.
__device__ __forceinline__ double sum_in_order(const double* __restrict__ partials, int64_t count) {
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kThreads) sum += partials[i];
  return block_sum<kThreads>(sum);
}

__device__ __forceinline__ void store_value(void* out, bool out_f64, double sum) {
  if (out_f64) *static_cast<double*>(out) = sum;
  else *static_cast<float*>(out) = __double2float_rn(sum);
}

// One block adds the partials in a fixed order and writes the value in the output's precision.
// static: prox.cu includes this header too (for the work split), and each unit keeps its own copy.
static __global__ void __launch_bounds__(kThreads) sum_partials(const double* __restrict__ partials, int64_t count,
                                                         void* out, bool out_f64) {
  const double sum = sum_in_order(partials, count);
  if (threadIdx.x == 0) store_value(out, out_f64, sum);
}

}  // namespace fp::cuda::kernels
