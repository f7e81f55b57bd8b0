/* LD_PRELOAD shim for tests: pthread_create fails with EAGAIN (as under RLIMIT_NPROC) once the
 * environment variable FP_TEST_FAIL_PTHREAD_CREATE is set to the number of threads that may still
 * start ("0": none). Read on every call, so a test can switch it on after its imports. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef int (*create_fn)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

static int started_while_limited = 0;

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*), void* arg) {
  const char* limit = getenv("FP_TEST_FAIL_PTHREAD_CREATE");
  if (limit && *limit) {
    if (started_while_limited >= atoi(limit)) return EAGAIN;
    ++started_while_limited;
  }
  create_fn real = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
  return real(thread, attr, start, arg);
}
