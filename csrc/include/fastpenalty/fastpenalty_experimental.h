/* fastpenalty: interfaces outside the stable C ABI. They may change, or go, in any release; the
 * benchmarks and tests of fastpenalty itself use them. */
#ifndef FASTPENALTY_FASTPENALTY_EXPERIMENTAL_H
#define FASTPENALTY_FASTPENALTY_EXPERIMENTAL_H

#include "fastpenalty/fastpenalty.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Elements per chunk: the unit of work of the thread pool and of the fixed-order reduction. */
#define FP_CHUNK 16384

/* Bandwidth probes for benchmarks: the access patterns of accumulate (g += w) and value (a
 * read-only sum) with the least arithmetic, on the same threads and chunks. float32/float64 only. */
FP_API fp_status fp_probe_add(const void* w, void* g, int64_t n, int32_t dtype);
FP_API fp_status fp_probe_sum(const void* w, int64_t n, int32_t dtype, double* out);

/* Test hook: the chunk-table allocation of each of the next n calls that reach it (any thread) fails,
 * so the call returns FP_ERR_OUT_OF_MEMORY after its argument checks and before any write. n <= 0
 * clears a pending count. */
FP_API void fp_experimental_fail_next_allocations(int n);

/* Whether a call with more than one part may run them on the process's OpenMP team (libgomp's
 * GOMP_parallel, when the process already has it, as torch's; on by default, off in a forked
 * child) instead of the library's own workers. The results are the same either way. */
FP_API void fp_experimental_use_openmp(int enabled);
/* How the last call with more than one part ran them: "openmp", "threads" (the library's
 * workers), "caller" (the pool was busy: all on the calling thread), or "none" before any. */
FP_API const char* fp_experimental_last_pool(void);

#ifdef __cplusplus
}
#endif
#endif
