// Runs the C ABI on weights from a file and prints what it computed, for tests/test_c_consumer.py.
//
//   consumer WEIGHTS N DTYPE L1 L2 GRAD_OUT
//
// WEIGHTS holds N elements of dtype code DTYPE (raw bytes); the gradient is written to GRAD_OUT
// in the same dtype. Printed, one fact a line: the package's and library's versions, the value
// (fp_value), the value over the weights split in two tensors with one factor pair per tensor
// (fp_value_many), the value returned by fp_accumulate into a zeroed buffer and whether that
// buffer then equals the gradient, the per-part sums (fp_sums_many), and the status, message and
// status string of a call with a bad factor.
#include <fastpenalty/fastpenalty.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

namespace {

int64_t element_size(int32_t dtype) { return fp_dtype_itemsize(dtype); }

bool ok(fp_status s, const char* what) {
  if (s == FP_OK) return true;
  std::fprintf(stderr, "%s failed (%d): %s\n", what, int(s), fp_last_error());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s WEIGHTS N DTYPE L1 L2 GRAD_OUT\n", argv[0]);
    return 2;
  }
  const int64_t n = std::atoll(argv[2]);
  const int32_t dtype = std::atoi(argv[3]);
  const double l1 = std::atof(argv[4]), l2 = std::atof(argv[5]);
  const int64_t bytes = n * element_size(dtype);

  std::ifstream in(argv[1], std::ios::binary);
  std::vector<char> w((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (int64_t(w.size()) != bytes) {
    std::fprintf(stderr, "expected %lld bytes of weights, got %zu\n", (long long)bytes, w.size());
    return 2;
  }

  std::printf("config_version %s\n", CONFIG_VERSION);
  std::printf("abi %d %d %d\n", fp_abi_version(), FP_ABI_VERSION, CONFIG_ABI_VERSION);
  std::printf("version %s %d.%d.%d\n", fp_version(), FP_VERSION_MAJOR, FP_VERSION_MINOR, FP_VERSION_PATCH);
  std::printf("cuda_component %d\n", CONFIG_HAS_CUDA ? 1 : 0);
  std::printf("isa %s\n", fp_get_isa());

  double value = 0.0;
  if (!ok(fp_value(w.data(), n, dtype, l1, l2, &value), "fp_value")) return 1;
  std::printf("value %.17g\n", value);

  // The same weights as two tensors, each with its own (equal) factors.
  const int64_t half = n / 2;
  const void* parts[2] = {w.data(), w.data() + half * element_size(dtype)};
  const int64_t ns[2] = {half, n - half};
  const int32_t dtypes[2] = {dtype, dtype};
  const double l1s[2] = {l1, l1}, l2s[2] = {l2, l2};
  double many = 0.0;
  if (!ok(fp_value_many(2, parts, ns, dtypes, l1s, l2s, 2, &many), "fp_value_many")) return 1;
  std::printf("value_many %.17g\n", many);

  std::vector<char> grad(bytes);
  if (!ok(fp_grad(w.data(), grad.data(), n, dtype, l1, l2), "fp_grad")) return 1;
  std::ofstream(argv[6], std::ios::binary).write(grad.data(), bytes);

  std::vector<char> acc(bytes, 0);
  double acc_value = 0.0;
  if (!ok(fp_accumulate(w.data(), acc.data(), n, dtype, l1, l2, &acc_value), "fp_accumulate")) return 1;
  std::printf("accumulate_value %.17g\n", acc_value);
  // Gradients never hold -0 (penalty_math.h), so 0 + grad(w) is grad(w) byte for byte.
  const bool same = std::memcmp(grad.data(), acc.data(), size_t(bytes)) == 0;
  std::printf("accumulate_matches_grad %d\n", same ? 1 : 0);

  double abs_sums[2] = {0.0, 0.0}, sq_sums[2] = {0.0, 0.0};
  if (!ok(fp_sums_many(2, parts, ns, dtypes, abs_sums, sq_sums), "fp_sums_many")) return 1;
  std::printf("sums_many %.17g %.17g %.17g %.17g\n", abs_sums[0], sq_sums[0], abs_sums[1], sq_sums[1]);

  double unused = 0.0;
  const fp_status bad = fp_value(w.data(), n, dtype, -1.0, l2, &unused);
  std::printf("bad_factor_status %d\n", int(bad));
  std::printf("bad_factor_message %s\n", fp_last_error());
  std::printf("bad_factor_status_string %s\n", fp_status_string(bad));
  return 0;
}
