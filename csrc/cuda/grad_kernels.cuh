// Device code of out = grad(w) for one tensor: an elementwise grid-stride pass with 16-byte
// vectors when both addresses allow it. The factors are read on the device, so the factor switches
// (a zero factor turns its term off) are taken inside the kernel, uniformly for the whole grid.
#pragma once
#include <stdint.h>

#include "cuda/element_format.cuh"
#include "cuda/launch_geometry.h"

namespace fp::cuda::kernels {

template <class F, bool L1, bool L2>
__device__ __forceinline__ void grad_elements(const typename F::Bits* __restrict__ w, typename F::Bits* __restrict__ out,
                                              int64_t n, bool vector_ok, double l1, double two_l2,
                                              bool narrow) {
  constexpr int V = F::kLanes;
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  const int64_t first = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  int64_t scalar_from = 0;
  if (vector_ok) {
    const int64_t nv = n / V;
    const uint4* __restrict__ wv = reinterpret_cast<const uint4*>(w);
    uint4* __restrict__ ov = reinterpret_cast<uint4*>(out);
    for (int64_t i = first; i < nv; i += stride) {
      Lanes<F> x = unpack<F>(__ldg(wv + i));
#pragma unroll
      for (int j = 0; j < V; ++j) x.v[j] = grad_element<F, L1, L2, false>(F::load(x.v[j]), 0, l1, two_l2, narrow);
      ov[i] = pack<F>(x);
    }
    scalar_from = nv * V;
  }
  for (int64_t i = scalar_from + first; i < n; i += stride)
    out[i] = grad_element<F, L1, L2, false>(F::load(__ldg(w + i)), 0, l1, two_l2, narrow);
}

template <class F>
__global__ void __launch_bounds__(kThreads) grad_kernel(const typename F::Bits* __restrict__ w,
                                                        typename F::Bits* __restrict__ out, int64_t n, bool vector_ok,
                                                        const double* __restrict__ l1p,
                                                        const double* __restrict__ l2p) {
  const double l1 = *l1p, l2 = *l2p;
  const double two_l2c = 2.0 * l2, l1c = l1;
  const bool narrow = fp_factors_fit_float(l1, l2);
  if (l1 != 0.0 && l2 != 0.0) grad_elements<F, true, true>(w, out, n, vector_ok, l1c, two_l2c, narrow);
  else if (l1 != 0.0) grad_elements<F, true, false>(w, out, n, vector_ok, l1c, two_l2c, narrow);
  else if (l2 != 0.0) grad_elements<F, false, true>(w, out, n, vector_ok, l1c, two_l2c, narrow);
  else grad_elements<F, false, false>(w, out, n, vector_ok, l1c, two_l2c, narrow);  // exactly 0, whatever w holds
}

}  // namespace fp::cuda::kernels
