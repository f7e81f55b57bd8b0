// Device code of the proximal step over one slice of a list (the multi-tensor pass's tables, work
// split and 16-byte vectors: multi_tensor_kernels.cuh): w = prox(w) in place per
// common/penalty_math.h (fp_prox_element; the CPU's bits), the value of the new weights and the
// count of exact zeros among them, both as per-block partials summed later in a fixed order.
//
// The sums run over the new weights in the value pass's order (thread, vector, lane), so a prox
// value equals the CUDA value of the weights it leaves, bit for bit. Factors stay on the device,
// so each block first checks every factor of the whole list: if one is not valid, no block writes
// anything and every partial is NaN (value NaN, zero count -1).
#pragma once
#include <stdint.h>

#include "common/penalty_math.h"
#include "cuda/block_reduce.cuh"
#include "cuda/element_format.cuh"
#include "cuda/launch_geometry.h"
#include "cuda/multi_tensor_kernels.cuh"
#include "cuda/tensor_table.h"

namespace fp::cuda::kernels {

struct ProxArgs {
  const double* lrs;  // the whole list's factors: entry t * step of each (step 0: one for all)
  const double* l1s;
  const double* l2s;
  int64_t lr_step;
  int64_t l1_step;
  int64_t l2_step;
  int64_t list_count;     // tensors in the whole list (for the factor check)
  int64_t first;          // this slice's first tensor in the list
  double* partials;       // this launch's value partials, one per block
  double* zero_partials;  // this launch's zero counts, one per block
  TensorTable table;
};

// The new bits of one element: NaN keeps its bits; else fp_prox_element in float32 when `narrow`
// (weights that are not float64 and fp_prox_fits_float), else in double, then F::round.
template <class F>
__device__ __forceinline__ typename F::Bits prox_bits(typename F::Acc x, typename F::Bits old, float tf, float df,
                                                      double t, double d, bool narrow) {
  if (x != x) return old;
  if constexpr (sizeof(typename F::Acc) == sizeof(float)) {
    if (narrow) return F::round(fp_prox_element<float>(x, tf, df));
  }
  return F::round(fp_prox_element<double>(double(x), t, d));
}

// One element of a thread's share: its new bits (WRITE) or its bits, added to the sums and count.
template <class F, bool WRITE>
__device__ __forceinline__ typename F::Bits prox_lane(typename F::Bits b, float tf, float df, double t, double d,
                                                      bool narrow, typename F::Acc& s1, typename F::Acc& s2,
                                                      double& zeros) {
  using A = typename F::Acc;
  const typename F::Bits nb = WRITE ? prox_bits<F>(F::load(b), b, tf, df, t, d, narrow) : b;
  const A x = F::load(nb);
  s1 += magnitude(x);
  s2 = mul_add(x, x, s2);
  zeros += x == A(0) ? 1.0 : 0.0;
  return nb;
}

// This thread's share of one chunk of `len` elements at w, in the order of chunk_share.
template <class F, bool WRITE>
__device__ __forceinline__ void prox_chunk_share(typename F::Bits* __restrict__ w, int len, bool vector_ok, float tf,
                                                 float df, double t, double d, bool narrow, typename F::Acc& s1,
                                                 typename F::Acc& s2, double& zeros) {
  constexpr int V = F::kLanes;
  __builtin_assume(__isGlobal(w));
  int scalar_from = 0;
  if (vector_ok) {
    const int vectors = len / V;
    uint4* __restrict__ wv = reinterpret_cast<uint4*>(w);
    for (int base = threadIdx.x; base < vectors; base += kThreads * kUnroll) {
      uint4 wr[kUnroll];
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int i = base + k * kThreads;
        if (i < vectors) wr[k] = wv[i];  // a plain load: this kernel writes w
      }
#pragma unroll
      for (int k = 0; k < kUnroll; ++k) {
        const int i = base + k * kThreads;
        if (i < vectors) {
          Lanes<F> x = unpack<F>(wr[k]);
#pragma unroll
          for (int j = 0; j < V; ++j) x.v[j] = prox_lane<F, WRITE>(x.v[j], tf, df, t, d, narrow, s1, s2, zeros);
          if constexpr (WRITE) wv[i] = pack<F>(x);
        }
      }
    }
    scalar_from = vectors * V;
  }
  for (int i = scalar_from + int(threadIdx.x); i < len; i += kThreads) {
    const typename F::Bits nb = prox_lane<F, WRITE>(w[i], tf, df, t, d, narrow, s1, s2, zeros);
    if constexpr (WRITE) w[i] = nb;
  }
}

// This thread's share of chunks [c0, c1) of one tensor (as segment_share); returns its part of
// l1*sum|w'| + l2*sum w'^2 and adds its zeros.
template <class F>
__device__ __forceinline__ double prox_segment(const TensorEntry& e, int64_t c0, int64_t c1, double lr, double l1,
                                               double l2, double& zeros) {
  using Bits = typename F::Bits;
  using A = typename F::Acc;
  Bits* w = reinterpret_cast<Bits*>(static_cast<uintptr_t>(e.w));
  const bool writes = fp_prox_writes(lr, l1, l2);
  const double t = fp_prox_shrink(lr, l1), s = fp_prox_decay(lr, l2), d = 1.0 + s;
  const bool narrow = fp_prox_fits_float(t, s);
  const float tf = __double2float_rn(t), df = __double2float_rn(d);
  const bool vector_ok = e.vector_ok != 0;
  double sum = 0.0;
  for_each_chunk<F>(e, c0, c1, [&](int64_t start, int len) {
    A s1 = A(0), s2 = A(0);
    if (writes) prox_chunk_share<F, true>(w + start, len, vector_ok, tf, df, t, d, narrow, s1, s2, zeros);
    else prox_chunk_share<F, false>(w + start, len, vector_ok, tf, df, t, d, narrow, s1, s2, zeros);
    sum += fp_combine<double>(double(s1), double(s2), l1, l2);
  });
  return sum;
}

// Whether every factor of the whole list is valid, agreed by the whole block.
__device__ __forceinline__ bool list_factors_ok(const ProxArgs& a) {
  double bad = 0.0;
  for (int64_t t = threadIdx.x; t < a.list_count; t += kThreads)
    if (!fp_prox_factors_ok(a.lrs[t * a.lr_step], a.l1s[t * a.l1_step], a.l2s[t * a.l2_step])) bad = 1.0;
  bad = block_sum<kThreads>(bad);
  __shared__ int all_ok;
  if (threadIdx.x == 0) all_ok = bad == 0.0;
  __syncthreads();  // also orders block_sum's next use of its shared memory after this one
  return all_ok != 0;
}

__global__ void __launch_bounds__(kThreads, kPassBlocksPerSm) prox_pass(const __grid_constant__ ProxArgs a) {
  if (!list_factors_ok(a)) {
    if (threadIdx.x == 0) a.partials[blockIdx.x] = a.zero_partials[blockIdx.x] = __longlong_as_double(0x7ff8000000000000LL);
    return;
  }
  double sum = 0.0, zeros = 0.0;
  for_each_segment_of_block(a.table, [&](int64_t t, int64_t c0, int64_t c1) {
    const int64_t k = a.first + t;
    const double lr = a.lrs[k * a.lr_step], l1 = a.l1s[k * a.l1_step], l2 = a.l2s[k * a.l2_step];
    sum += with_format(a.table.entries[t].dtype, [&](auto format) {
      return prox_segment<decltype(format)>(a.table.entries[t], c0, c1, lr, l1, l2, zeros);
    });
  });
  sum = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) a.partials[blockIdx.x] = sum;
  __syncthreads();  // block_sum's shared memory is read by warp 0 before its next use
  zeros = block_sum<kThreads>(zeros);
  if (threadIdx.x == 0) a.zero_partials[blockIdx.x] = zeros;
}

// One block adds the value partials in sum_partials' order (so the same bits) and then the zero
// counts (exact in double below 2^53) into an int64: -1 where a count is NaN (a factor refused).
__global__ void __launch_bounds__(kThreads) sum_prox_partials(const double* __restrict__ partials,
                                                              const double* __restrict__ zero_partials, int64_t count,
                                                              void* out, bool out_f64, long long* zeros_out) {
  const double sum = sum_in_order(partials, count);
  if (threadIdx.x == 0) store_value(out, out_f64, sum);
  __syncthreads();  // block_sum's shared memory is read by warp 0 before its next use
  const double zeros = sum_in_order(zero_partials, count);
  if (threadIdx.x == 0) *zeros_out = zeros == zeros ? (long long)zeros : -1;
}

}  // namespace fp::cuda::kernels
