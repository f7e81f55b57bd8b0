/* fastpenalty C ABI, version 1.
 *
 * Fused weight penalties (Keras convention):
 *   value(w)  = l1 * sum |w_i| + l2 * sum w_i^2
 *   grad(w)_i = l1 * sign(w_i) + 2 * l2 * w_i        sign(0) = 0
 * over raw buffers of float32, float64, float16 or bfloat16 elements. The Python bindings call
 * exactly these functions. Every function validates its arguments and returns a status before it
 * writes anything; fp_last_error() gives the message of the calling thread's last failure.
 *
 * Numerics: float64 accumulates in float64; other dtypes accumulate in float32 within fixed blocks of
 * FP_CHUNK elements and in float64 across blocks, so values do not depend on the thread count.
 * A factor equal to 0 switches its term off. Factors must be finite and >= 0.
 */
#ifndef FASTPENALTY_FASTPENALTY_H
#define FASTPENALTY_FASTPENALTY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define FP_API __declspec(dllexport)
#else
#define FP_API __attribute__((visibility("default")))
#endif

#define FP_ABI_VERSION 1
#define FP_CHUNK 16384

typedef enum fp_dtype { FP_FLOAT32 = 0, FP_FLOAT64 = 1, FP_FLOAT16 = 2, FP_BFLOAT16 = 3 } fp_dtype;

typedef enum fp_status {
  FP_OK = 0,
  FP_ERR_INVALID_ARGUMENT = 1, /* bad factor, negative size, null pointer with n > 0 */
  FP_ERR_UNSUPPORTED_DTYPE = 2,
  FP_ERR_UNSUPPORTED_ISA = 3,
  FP_ERR_OUT_OF_MEMORY = 4,
  FP_ERR_INTERNAL = 5
} fp_status;

FP_API int fp_abi_version(void);
FP_API const char* fp_last_error(void);

/* Single tensor. `out` receives the value as a double (round it to float for non-fp64 inputs). */
FP_API fp_status fp_value(const void* w, int64_t n, int32_t dtype, double l1, double l2, double* out);
/* out_grad = grad(w), written in w's dtype; out_grad must not overlap w. */
FP_API fp_status fp_grad(const void* w, void* out_grad, int64_t n, int32_t dtype, double l1, double l2);
/* g += grad(w) and *out = value(w), in one pass over memory; g has w's dtype and must not overlap w. */
FP_API fp_status fp_accumulate(const void* w, void* g, int64_t n, int32_t dtype, double l1, double l2,
                               double* out);

/* Lists of `count` tensors in one call. l1s/l2s hold `count` factors, or 1 broadcast to all
 * (n_factors). dtypes may differ between tensors; gs[i] has ws[i]'s dtype. */
FP_API fp_status fp_value_many(int64_t count, const void* const* ws, const int64_t* ns, const int32_t* dtypes,
                               const double* l1s, const double* l2s, int64_t n_factors, double* out);
FP_API fp_status fp_grad_many(int64_t count, const void* const* ws, void* const* outs, const int64_t* ns,
                              const int32_t* dtypes, const double* l1s, const double* l2s, int64_t n_factors);
FP_API fp_status fp_accumulate_many(int64_t count, const void* const* ws, void* const* gs, const int64_t* ns,
                                    const int32_t* dtypes, const double* l1s, const double* l2s,
                                    int64_t n_factors, double* out);

/* Bandwidth probes for benchmarks: the access patterns of accumulate (g += w) and value (a
 * read-only sum) with the least arithmetic, on the same threads and chunks. float32/float64 only. */
FP_API fp_status fp_probe_add(const void* w, void* g, int64_t n, int32_t dtype);
FP_API fp_status fp_probe_sum(const void* w, int64_t n, int32_t dtype, double* out);

/* Threads of the library's persistent pool (default: the cores this process may use, at most
 * FP_MAX_THREADS). fp_set_num_threads fails with FP_ERR_INVALID_ARGUMENT outside [1, FP_MAX_THREADS].
 * A pool that cannot create a thread runs on the threads it has (or on the caller): results do
 * not depend on the thread count. */
#define FP_MAX_THREADS 1024
FP_API fp_status fp_set_num_threads(int n);
FP_API int fp_get_num_threads(void);

/* Environment read once, at the first call that needs it:
 *   FASTPENALTY_NUM_THREADS  a whole number in [1, FP_MAX_THREADS] (larger ones are clamped)
 *   FASTPENALTY_ISA          scalar, avx2 or avx512 (any case): the best ISA the library may use
 * A value that cannot be used is ignored (the default applies) and described by
 * fp_config_warning(): "" when every variable that is set was used as given. The string is static. */
FP_API const char* fp_config_warning(void);

/* CPU kernel selection: "scalar", "avx2", "avx512". The environment variable FASTPENALTY_ISA caps
 * the choice at load time; fp_set_isa fails with FP_ERR_UNSUPPORTED_ISA for one the CPU lacks. */
FP_API fp_status fp_set_isa(const char* name);
FP_API const char* fp_get_isa(void);
FP_API const char* fp_best_isa(void);
/* Supported ISAs, best first, as a comma-separated list ("avx512,avx2,scalar"). */
FP_API const char* fp_available_isas(void);

#ifdef __cplusplus
}
#endif
#endif
