/* fastpenalty C ABI, version 1 (FP_ABI_VERSION; the shared library's SOVERSION).
 *
 * Fused weight penalties (Keras convention):
 *   value(w)  = l1 * sum |w_i| + l2 * sum w_i^2
 *   grad(w)_i = l1 * sign(w_i) + 2 * l2 * w_i        sign(0) = 0
 * over raw buffers of float32, float64, float16 or bfloat16 elements. The Python bindings call
 * exactly these functions. Every function validates its arguments and returns a status before it
 * writes anything.
 *
 * Numerics: float64 accumulates in float64; other dtypes accumulate in float32 within short blocks
 * and in float64 across blocks, in a fixed order, so values do not depend on the thread count. A
 * block whose sums would overflow or underflow is redone in float64 (float64 weights: at a
 * power-of-two scale), so a value is finite wherever its exact value is. Gradients follow a fixed
 * rounding contract, the same bits on every CPU kernel: float32 arithmetic for non-float64 weights
 * when l1 and 2*l2 lie in [2^-126, 2^100] (or are 0), float64 otherwise, so no factor overflows
 * or flushes (common/penalty_math.h in the sources spells out every operation). A factor equal to
 * 0 switches its term off. Factors must be finite and >= 0.
 *
 * Threads: every function may be called from any thread at any time. Calls that run at the same
 * time share the library's worker pool: one of them uses it and the others run on their own
 * thread, with identical results. fp_set_num_threads waits for a call using the pool to finish;
 * fp_set_isa affects calls that start after it. After fork() the child starts a fresh pool.
 *
 * Errors: a failing call returns its status and stores a message in thread-local storage, which
 * fp_last_error() returns. The pointer stays valid, and the text unchanged, until the same thread's
 * next failing call or the thread's exit; successful calls leave it alone, so read it only after a
 * status other than FP_OK. fp_status_string() names a status without any state.
 *
 * Benchmark probes and the chunk size, which may change between versions without notice, are in
 * <fastpenalty/fastpenalty_experimental.h>.
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
/* The version of the fastpenalty release this header belongs to; fp_version() gives the loaded
 * library's ("MAJOR.MINOR.PATCH"). */
#define FP_VERSION_MAJOR 0
#define FP_VERSION_MINOR 1
#define FP_VERSION_PATCH 0

/* Element types. Codes are stable; fp_dtype_itemsize()/fp_dtype_name() describe them at run time
 * (0 / NULL for a code that is not one of these). */
typedef enum fp_dtype { FP_FLOAT32 = 0, FP_FLOAT64 = 1, FP_FLOAT16 = 2, FP_BFLOAT16 = 3 } fp_dtype;
#define FP_DTYPE_COUNT 4

typedef enum fp_status {
  FP_OK = 0,
  FP_ERR_INVALID_ARGUMENT = 1, /* bad factor, negative size, null pointer with n > 0 */
  FP_ERR_UNSUPPORTED_DTYPE = 2,
  FP_ERR_UNSUPPORTED_ISA = 3,
  FP_ERR_OUT_OF_MEMORY = 4,
  FP_ERR_INTERNAL = 5
} fp_status;

FP_API int fp_abi_version(void);
FP_API const char* fp_version(void);
FP_API const char* fp_last_error(void);
/* A static description of a status ("invalid argument", ...; "unknown status" for other values). */
FP_API const char* fp_status_string(fp_status status);

FP_API int32_t fp_dtype_itemsize(int32_t dtype);
FP_API const char* fp_dtype_name(int32_t dtype); /* "float32", "float64", "float16", "bfloat16" */
/* The dtype a value over tensors of these dtypes is returned in: FP_FLOAT64 when every one is
 * float64 (and count > 0), else FP_FLOAT32. -1 when a code is unknown. */
FP_API int32_t fp_result_dtype(int64_t count, const int32_t* dtypes);

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

/* The two sums of every tensor in one read: out_abs[t] = sum |ws[t]_i| and out_sq[t] = sum ws[t]_i^2
 * (count entries each), accumulated exactly as the values are, so l1 * out_abs[t] + l2 * out_sq[t]
 * is tensor t's term of fp_value_many. inf where a sum exceeds double's range (float64 weights
 * beyond ~1e154). Errors as for fp_value_many; nothing is written before the checks pass. */
FP_API fp_status fp_sums_many(int64_t count, const void* const* ws, const int64_t* ns, const int32_t* dtypes,
                              double* out_abs, double* out_sq);

/* The proximal elastic-net step, in place, over `count` tensors in one pass:
 *   w = sign(w) * max(|w| - lr*l1, 0) / (1 + 2*lr*l2)
 * with lrs/l1s/l2s holding one entry per tensor (each finite and >= 0, with lr*l1 and 2*lr*l2
 * finite). Float32 arithmetic for non-float64 weights when lr*l1 and 2*lr*l2 lie in
 * [2^-126, 2^100] (or are 0), else float64; a true division, rounded once; NaN elements keep
 * their bits (common/penalty_math.h in the sources spells out every operation). With lr = 0, or
 * l1 = l2 = 0, nothing is written. *out_value receives l1*sum|w'| + l2*sum w'^2 of the new
 * weights w', accumulated exactly as fp_value_many accumulates (the same bits), and *out_zeros the
 * number of elements of w' equal to 0 (+0 or -0). No two tensors may overlap in memory. Every
 * argument is checked before anything is written. */
FP_API fp_status fp_prox_many(int64_t count, void* const* ws, const int64_t* ns, const int32_t* dtypes,
                              const double* lrs, const double* l1s, const double* l2s, double* out_value,
                              int64_t* out_zeros);
FP_API fp_status fp_prox(void* w, int64_t n, int32_t dtype, double lr, double l1, double l2, double* out_value,
                         int64_t* out_zeros);

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
