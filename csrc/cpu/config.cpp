#include "cpu/config.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <mutex>

#include "fastpenalty/fastpenalty.h"

namespace fp::cpu {
namespace {

std::string trimmed_lower(const char* text) {
  std::string s(text);
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  s = s.substr(b, e - b);
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void add_warning(EnvConfig& c, const std::string& message) {
  if (!c.warning.empty()) c.warning += "; ";
  c.warning += message;
}

EnvConfig read_env() {
  EnvConfig c;
  if (const char* env = std::getenv("FASTPENALTY_NUM_THREADS"); env && *env) {
    bool capped = false;
    if (!parse_thread_count(env, &c.num_threads, &capped)) {
      c.num_threads = 0;
      add_warning(c, "FASTPENALTY_NUM_THREADS='" + std::string(env) +
                         "' is not a whole number >= 1; using the default thread count");
    } else if (capped) {
      add_warning(c, "FASTPENALTY_NUM_THREADS='" + std::string(env) + "' is above the limit of " +
                         std::to_string(FP_MAX_THREADS) + "; using " + std::to_string(FP_MAX_THREADS));
    }
  }
  if (const char* env = std::getenv("FASTPENALTY_ISA"); env && *env) {
    const std::string name = trimmed_lower(env);
    if (isa_from_name(name.c_str(), &c.isa_cap)) {
      c.has_isa_cap = true;
    } else {
      add_warning(c, "FASTPENALTY_ISA='" + std::string(env) +
                         "' is not one of scalar, avx2, avx512; using the best ISA of this CPU");
    }
  }
  return c;
}

}  // namespace

bool parse_thread_count(const char* text, int* out, bool* capped) {
  const std::string s = trimmed_lower(text);
  if (s.empty() || s.size() > 64) return false;
  uint64_t n = 0;
  bool saturated = false;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return false;
    if (!saturated) {
      n = n * 10 + uint64_t(ch - '0');
      saturated = n > uint64_t(FP_MAX_THREADS);
    }
  }
  if (n == 0) return false;
  *capped = saturated;
  *out = saturated ? FP_MAX_THREADS : int(n);
  return true;
}

const EnvConfig& env_config() {
  static std::once_flag once;
  static EnvConfig config;
  std::call_once(once, [] { config = read_env(); });
  return config;
}

}  // namespace fp::cpu
