// Runs the CUDA kernels' own source (multi_tensor_kernels.cuh, grad_kernels.cuh) on the host
// through cuda_emu.h and checks every written element, every value and the untouched bytes around
// each buffer against a double-precision reference. It exercises the work split, the table walk,
// the vector and element-wise paths, dtype dispatch and the factor switches on machines without a
// GPU (tests/test_cuda.py builds and runs it); GPU-only behaviour is for the GPU tests.
//
// Build: g++ -std=c++20 -O1 -I<cuda>/include -Icsrc -Icsrc/include emulate_kernels.cpp
//        csrc/cuda/tensor_table.cpp -lpthread
#include "cuda_emu.h"
// (the emulation has to come before the kernel headers)
#include <random>
#include <string>

#include "common/dtype.h"
#include "cuda/api.h"
#include "cuda/grad_kernels.cuh"
#include "cuda/multi_tensor_kernels.cuh"
#include "cuda/tensor_table.h"

using namespace fp::cuda;
using kernels::Mode;

static int failures = 0;
#define CHECK(cond, ...)                         \
  do {                                           \
    if (!(cond)) {                               \
      if (failures < 30) {                       \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);            \
        fprintf(stderr, "\n");                   \
      }                                          \
      ++failures;                                \
    }                                            \
  } while (0)

static double get(int dt, const unsigned char* p, int64_t i) {
  switch (dt) {
    case FP_FLOAT32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case FP_FLOAT64: { double d; memcpy(&d, p + 8 * i, 8); return d; }
    case FP_FLOAT16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return fp_f16_to_f32(h); }
    default: { uint16_t h; memcpy(&h, p + 2 * i, 2); return fp_bf16_to_f32(h); }
  }
}
static void put(int dt, unsigned char* p, int64_t i, double v) {
  switch (dt) {
    case FP_FLOAT32: { float f = (float)v; memcpy(p + 4 * i, &f, 4); break; }
    case FP_FLOAT64: { memcpy(p + 8 * i, &v, 8); break; }
    case FP_FLOAT16: { uint16_t h = fp_f32_to_f16((float)v); memcpy(p + 2 * i, &h, 2); break; }
    default: { uint16_t h = fp_f32_to_bf16((float)v); memcpy(p + 2 * i, &h, 2); break; }
  }
}
static double eps_of(int dt) {
  return dt == FP_FLOAT64 ? 0x1p-52 : dt == FP_FLOAT32 ? 0x1p-23 : dt == FP_FLOAT16 ? 0x1p-10 : 0x1p-7;
}

constexpr int kGuard = 64;  // sentinel bytes before and after every buffer

struct Tensor {
  int dt;
  int64_t n;
  int shift_w, shift_g;  // element offsets from a 64-byte aligned base
  unsigned char* wbase;
  unsigned char* gbase;
  size_t bytes;
  unsigned char* w() const { return wbase + kGuard + shift_w * fp_dtype_size(dt); }
  unsigned char* g() const { return gbase + kGuard + shift_g * fp_dtype_size(dt); }
};

static unsigned char* alloc(size_t bytes) {
  auto* p = static_cast<unsigned char*>(aligned_alloc(64, (bytes + 2 * kGuard + 64 + 63) / 64 * 64));
  memset(p, 0xCD, bytes + 2 * kGuard + 64);
  return p;
}

static std::vector<Tensor> make(std::mt19937_64& rng, const std::vector<int64_t>& sizes, bool specials, int forced_dt = -1) {
  std::vector<Tensor> ts;
  std::normal_distribution<double> normal(0.0, 2.0);
  for (size_t k = 0; k < sizes.size(); ++k) {
    Tensor t;
    t.dt = forced_dt >= 0 ? forced_dt : int(k % 4);
    t.n = sizes[k];
    t.shift_w = (k % 3 == 1) ? 1 : (k % 5 == 2 ? 3 : 0);
    t.shift_g = (k % 4 == 3) ? 1 : 0;
    t.bytes = size_t(t.n + 8) * fp_dtype_size(t.dt);
    t.wbase = alloc(t.bytes);
    t.gbase = alloc(t.bytes);
    for (int64_t i = 0; i < t.n; ++i) {
      double x = normal(rng);
      if (i % 29 == 0) x = (i % 58 == 0) ? 0.0 : -0.0;
      if (specials && i == 5) x = INFINITY;
      if (specials && i == 6) x = -INFINITY;
      if (specials && i == 7) x = NAN;
      put(t.dt, t.w(), i, x);
      put(t.dt, t.g(), i, normal(rng) * 0.1);
    }
    ts.push_back(t);
  }
  return ts;
}

static bool guards_intact(const Tensor& t, const unsigned char* base, int shift) {
  const size_t es = fp_dtype_size(t.dt);
  const unsigned char* data = base + kGuard + shift * es;
  for (const unsigned char* p = base; p < data; ++p)
    if (*p != 0xCD) return false;
  const unsigned char* end = data + t.n * es;
  for (const unsigned char* p = end; p < end + kGuard; ++p)
    if (*p != 0xCD) return false;
  return true;
}

static double term(double x, double l1, double l2) {
  double t = 0.0;
  if (l1 != 0.0) t += l1 * (x > 0 ? 1.0 : x < 0 ? -1.0 : (x == x ? 0.0 : x));
  if (l2 != 0.0) t += 2.0 * l2 * x;
  return t;
}

static bool same_double(double a, double b, double tol) {
  if (std::isnan(b)) return std::isnan(a);
  if (std::isinf(b)) return a == b;
  return std::fabs(a - b) <= tol;
}

static void run_pass(const std::string& name, std::vector<Tensor>& ts, Mode mode, std::vector<double> l1s,
                     std::vector<double> l2s, int64_t grid_wanted) {
  const size_t T = ts.size();
  std::vector<uint64_t> w_ptrs, g_ptrs;
  std::vector<int64_t> ns;
  std::vector<int32_t> dts;
  for (auto& t : ts) {
    w_ptrs.push_back(reinterpret_cast<uint64_t>(t.w()));
    if (mode != Mode::value) g_ptrs.push_back(reinterpret_cast<uint64_t>(t.g()));
    ns.push_back(t.n);
    dts.push_back(t.dt);
  }
  std::vector<unsigned char> table(table_bytes(T) + 16);
  unsigned char* tab = table.data() + (16 - reinterpret_cast<uintptr_t>(table.data()) % 16) % 16;
  const int64_t total = fill_table(reinterpret_cast<uint64_t>(tab), table_bytes(T), w_ptrs, g_ptrs, ns, dts);
  if (total == 0) return;
  const int64_t grid = std::min<int64_t>(grid_wanted, total);
  // snapshots
  std::vector<std::vector<double>> g0(T);
  for (size_t k = 0; k < T; ++k)
    for (int64_t i = 0; i < ts[k].n; ++i) g0[k].push_back(get(ts[k].dt, ts[k].g(), i));
  if (mode == Mode::overwrite)
    for (auto& t : ts) memset(t.g(), 0xEE, t.n * fp_dtype_size(t.dt));  // every element must be written

  std::vector<double> partials(grid, 12345.0);
  kernels::PassArgs a;
  a.entries = reinterpret_cast<const TensorEntry*>(tab);
  a.chunk_begin = reinterpret_cast<const int64_t*>(tab + chunk_begin_offset(T));
  a.num_tensors = T;
  a.total_chunks = total;
  a.l1s = l1s.data();
  a.l2s = l2s.data();
  a.l1_step = l1s.size() == 1 ? 0 : 1;
  a.l2_step = l2s.size() == 1 ? 0 : 1;
  a.partials = partials.data();
  switch (mode) {
    case Mode::value: emu_launch(grid, kThreads, kernels::multi_tensor_pass<Mode::value>, a); break;
    case Mode::accumulate: emu_launch(grid, kThreads, kernels::multi_tensor_pass<Mode::accumulate>, a); break;
    case Mode::overwrite: emu_launch(grid, kThreads, kernels::multi_tensor_pass<Mode::overwrite>, a); break;
  }
  bool all64 = true;
  for (auto& t : ts) all64 = all64 && t.dt == FP_FLOAT64;
  if (mode != Mode::overwrite) {
    for (double p : partials) CHECK(p != 12345.0, "%s: a partial was not written", name.c_str());
    double out64 = 0;
    float out32 = 0;
    if (all64) emu_launch(1, kThreads, kernels::sum_partials, (const double*)partials.data(), grid, (void*)&out64, true);
    else emu_launch(1, kThreads, kernels::sum_partials, (const double*)partials.data(), grid, (void*)&out32, false);
    const double got = all64 ? out64 : out32;
    long double ref = 0;
    for (size_t k = 0; k < T; ++k) {
      const double l1 = l1s[l1s.size() == 1 ? 0 : k], l2 = l2s[l2s.size() == 1 ? 0 : k];
      long double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < ts[k].n; ++i) {
        const double x = get(ts[k].dt, ts[k].w(), i);
        s1 += std::fabs(x);
        s2 += (long double)x * x;
      }
      if (l1 != 0) ref += l1 * s1;
      if (l2 != 0) ref += l2 * s2;
    }
    const double tol = (all64 ? 1e-12 : 2e-6) * std::fabs((double)ref);
    CHECK(same_double(got, (double)ref, tol), "%s: value %.17g vs reference %.17g", name.c_str(), got, (double)ref);
    // determinism: a second run gives the same bits
    std::vector<double> again(grid);
    a.partials = again.data();
    if (mode == Mode::value) {
      emu_launch(grid, kThreads, kernels::multi_tensor_pass<Mode::value>, a);
      CHECK(memcmp(again.data(), partials.data(), grid * 8) == 0, "%s: partials differ between runs", name.c_str());
    }
  }
  for (size_t k = 0; k < T; ++k) {
    const Tensor& t = ts[k];
    const double l1 = l1s[l1s.size() == 1 ? 0 : k], l2 = l2s[l2s.size() == 1 ? 0 : k];
    CHECK(guards_intact(t, t.gbase, t.shift_g), "%s: tensor %zu: wrote outside g", name.c_str(), k);
    CHECK(guards_intact(t, t.wbase, t.shift_w), "%s: tensor %zu: wrote around w", name.c_str(), k);
    for (int64_t i = 0; i < t.n; ++i) {
      const double x = get(t.dt, t.w(), i);
      const double got = get(t.dt, t.g(), i);
      double want;
      if (mode == Mode::value) want = g0[k][i];
      else if (mode == Mode::accumulate) want = (l1 == 0 && l2 == 0) ? g0[k][i] : g0[k][i] + term(x, l1, l2);
      else want = term(x, l1, l2);
      const double scale = std::fabs(mode == Mode::accumulate ? g0[k][i] : 0.0) + std::fabs(term(x, l1, l2));
      const double tol = 3 * eps_of(t.dt) * scale + 1e-300;
      bool ok = same_double(got, want, tol);
      if (mode != Mode::overwrite && (mode == Mode::value || (l1 == 0 && l2 == 0)))
        ok = memcmp(&got, &want, 8) == 0 || (std::isnan(got) && std::isnan(want));
      if (mode == Mode::overwrite && l1 == 0 && l2 == 0) ok = got == 0.0 && !std::signbit(got);
      CHECK(ok, "%s: tensor %zu (dtype %d, n %lld) element %lld: got %.9g want %.9g (x %.9g)", name.c_str(), k,
            t.dt, (long long)t.n, (long long)i, got, want, x);
    }
  }
}

static void run_grad(std::vector<Tensor>& ts, double l1, double l2, unsigned grid) {
  for (size_t k = 0; k < ts.size(); ++k) {
    Tensor& t = ts[k];
    if (t.n == 0) continue;
    memset(t.g(), 0xEE, t.n * fp_dtype_size(t.dt));
    const bool vec = reinterpret_cast<uintptr_t>(t.w()) % 16 == 0 && reinterpret_cast<uintptr_t>(t.g()) % 16 == 0;
    switch (t.dt) {
#define LAUNCH(CODE)                                                                                         \
  case CODE: {                                                                                               \
    using F = Format<CODE>;                                                                                  \
    emu_launch(grid, kThreads, kernels::grad_kernel<F>, (const F::Bits*)t.w(), (F::Bits*)t.g(), t.n, vec, \
               (const double*)&l1, (const double*)&l2);                                                     \
    break;                                                                                                   \
  }
      LAUNCH(FP_FLOAT32)
      LAUNCH(FP_FLOAT64)
      LAUNCH(FP_FLOAT16)
      LAUNCH(FP_BFLOAT16)
    }
    CHECK(guards_intact(t, t.gbase, t.shift_g), "grad: tensor %zu: wrote outside out", k);
    for (int64_t i = 0; i < t.n; ++i) {
      const double x = get(t.dt, t.w(), i), got = get(t.dt, t.g(), i), want = term(x, l1, l2);
      bool ok = same_double(got, want, 3 * eps_of(t.dt) * std::fabs(want) + 1e-300);
      if (l1 == 0 && l2 == 0) ok = got == 0.0 && !std::signbit(got);
      CHECK(ok, "grad grid %u: tensor %zu (dtype %d, n %lld) element %lld: got %.9g want %.9g", grid, k, t.dt,
            (long long)t.n, (long long)i, got, want);
    }
  }
}

int main() {
  std::mt19937_64 rng(42);
  const int64_t C = kChunk;
  const std::vector<int64_t> sizes = {0, 1, 3, 17, C - 1, C, C + 1, 5, 0, 3 * C + 7, 65, 2 * C, 97, 0, 33, 4 * C + 3};
  const std::vector<double> l1_per = {0.0, 0.013, 0.5, 0.0, 1e-3, 2.0, 0.25, 0.0, 0.7, 0.1, 0.0, 0.3, 1.0, 0.0, 0.4, 0.9};
  const std::vector<double> l2_per = {0.021, 0.0, 1.5, 0.0, 0.25, 0.0, 0.5, 0.0, 0.3, 0.2, 0.7, 0.0, 1.0, 0.3, 0.0, 0.2};
  for (bool specials : {false, true}) {
    for (int64_t grid : {1, 3, 13}) {
      for (Mode mode : {Mode::value, Mode::accumulate, Mode::overwrite}) {
        for (int fac = 0; fac < 4; ++fac) {
          auto ts = make(rng, sizes, specials);
          std::vector<double> l1s, l2s;
          if (fac == 0) { l1s = l1_per; l2s = l2_per; }
          if (fac == 1) { l1s = {0.013}; l2s = {0.021}; }
          if (fac == 2) { l1s = {0.0}; l2s = {0.0}; }
          if (fac == 3) { l1s = {0.5}; l2s = l2_per; }
          std::string name = "mode " + std::to_string(int(mode)) + " grid " + std::to_string(grid) + " factors " +
                             std::to_string(fac) + (specials ? " specials" : "");
          run_pass(name, ts, mode, l1s, l2s, grid);
          for (auto& t : ts) { free(t.wbase); free(t.gbase); }
        }
      }
    }
    // one dtype only: the fp64 result path
    for (Mode mode : {Mode::value, Mode::accumulate}) {
      std::vector<int64_t> s64 = {C + 3, 0, 10, 2 * C};
      auto ts = make(rng, s64, specials, FP_FLOAT64);
      run_pass("fp64 only", ts, mode, {0.3}, {0.7}, 3);
      for (auto& t : ts) { free(t.wbase); free(t.gbase); }
    }
    for (unsigned grid : {1u, 3u}) {
      for (auto [l1, l2] : {std::pair{0.013, 0.021}, {0.5, 0.0}, {0.0, 1.5}, {0.0, 0.0}}) {
        auto ts = make(rng, sizes, specials);
        run_grad(ts, l1, l2, grid);
        for (auto& t : ts) { free(t.wbase); free(t.gbase); }
      }
    }
  }
  printf("vector loads: %ld\n", g_vector_loads);
  printf("%s (%d failures)\n", failures ? "FAILED" : "all passed", failures);
  return failures ? 1 : 0;
}
