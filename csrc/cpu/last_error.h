// The thread-local message behind fp_last_error() (kept in ops.cpp), for the ABI files beside it.
#pragma once
#include <string>

#include "fastpenalty/fastpenalty.h"

namespace fp::cpu {

// Stores `message` for fp_last_error() and returns `status`.
fp_status report_error(fp_status status, std::string message);

}  // namespace fp::cpu
