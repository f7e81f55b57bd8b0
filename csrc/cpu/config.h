// The library's environment variables, read once and strictly. A value that cannot be used is
// never guessed at: the default is used instead and the reason is kept for fp_config_warning().
#pragma once
#include <string>

#include "cpu/kernels.h"

namespace fp::cpu {

struct EnvConfig {
  int num_threads = 0;       // FASTPENALTY_NUM_THREADS; 0 when unset or unusable
  bool has_isa_cap = false;  // FASTPENALTY_ISA named a known ISA
  Isa isa_cap = Isa::scalar;
  std::string warning;       // "" when every variable set was used as given
};

const EnvConfig& env_config();

// Parses a decimal thread count in [1, FP_MAX_THREADS] (surrounding blanks allowed). Returns false
// for anything else; *capped is set when a well-formed count above the bound was clamped to it.
bool parse_thread_count(const char* text, int* out, bool* capped);

}  // namespace fp::cpu
