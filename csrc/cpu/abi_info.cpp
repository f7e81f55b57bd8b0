// The stateless facts of the C ABI: versions, status names and the dtype table (common/dtype.h).
#include "common/dtype.h"
#include "fastpenalty/fastpenalty.h"

#ifndef FASTPENALTY_VERSION_STRING
#error "the build defines FASTPENALTY_VERSION_STRING (cmake/FastpenaltyPackage.cmake)"
#endif

extern "C" {

int fp_abi_version(void) { return FP_ABI_VERSION; }

const char* fp_version(void) { return FASTPENALTY_VERSION_STRING; }

const char* fp_status_string(fp_status status) {
  switch (status) {
    case FP_OK:
      return "ok";
    case FP_ERR_INVALID_ARGUMENT:
      return "invalid argument";
    case FP_ERR_UNSUPPORTED_DTYPE:
      return "unsupported dtype";
    case FP_ERR_UNSUPPORTED_ISA:
      return "unsupported ISA";
    case FP_ERR_OUT_OF_MEMORY:
      return "out of memory";
    case FP_ERR_INTERNAL:
      return "internal error";
  }
  return "unknown status";
}

int32_t fp_dtype_itemsize(int32_t dtype) { return fp_dtype_size(dtype); }

const char* fp_dtype_name(int32_t dtype) { return fp_dtype_name_of(dtype); }

int32_t fp_result_dtype(int64_t count, const int32_t* dtypes) {
  if (count < 0 || (count > 0 && !dtypes)) return -1;
  return fp_result_dtype_of(count, dtypes);
}

}  // extern "C"
