// Drives the real CUDA launchers (fp::cuda::launch_multi_tensor, launch_grad: csrc/cuda/*.cu
// compiled against include/cuda_runtime.h) on the CPU and checks every element bit for bit
// against the CPU kernels' rounding contract (common/penalty_math.h in double, the dtype.h
// conversions), every value against a long-double sum, that w, bytes before a view and
// zero-factor gradients stay untouched, that bad arguments raise before any launch, and the index
// arithmetic past 2^32 elements, and the proximal step (launch_prox) bit for bit against the same
// contract, its zero count and its value against the value pass over its result. Buffers are exact-size heap blocks, so AddressSanitizer sees any
// access past them. tests/test_cuda_emulation.py builds and runs it; it prints "all passed".
//
// usage: emulate [quick]   (quick: stop at the first failure; the mutation check uses it)
#include <cuda_runtime.h>
#include <sys/mman.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/penalty_math.h"
#include "cuda/api.h"
#include "cuda/tensor_table.h"

using namespace fp::cuda;

static int failures = 0;
static bool quick = false;
#define CHECK(cond, ...)                                     \
  do {                                                       \
    if (!(cond)) {                                           \
      if (failures < 20) {                                   \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                        \
        fprintf(stderr, "\n");                               \
      }                                                      \
      ++failures;                                            \
      if (quick) exit(1);                                    \
    }                                                        \
  } while (0)

// ---- the CPU's per-element contract, written from penalty_math.h's description -----------------

static double widen(int dt, const unsigned char* p, int64_t i) {
  switch (dt) {
    case FP_FLOAT32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case FP_FLOAT64: { double d; memcpy(&d, p + 8 * i, 8); return d; }
    case FP_FLOAT16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return fp_f16_to_f32(h); }
    default: { uint16_t h; memcpy(&h, p + 2 * i, 2); return fp_bf16_to_f32(h); }
  }
}

static uint64_t bits_of(int dt, const unsigned char* p, int64_t i) {
  uint64_t b = 0;
  memcpy(&b, p + int64_t(fp_dtype_size(dt)) * i, size_t(fp_dtype_size(dt)));
  return b;
}

static uint64_t rounded(int dt, float f) {
  if (dt == FP_FLOAT32) return fp_f32_bits(f);
  return dt == FP_FLOAT16 ? fp_f32_to_f16(f) : fp_f32_to_bf16(f);
}

static uint64_t rounded(int dt, double u) {
  if (dt == FP_FLOAT64) { uint64_t b; memcpy(&b, &u, 8); return b; }
  return rounded(dt, float(u));
}

template <class T>
static T term(T x, T l1, T two_l2) {
  if (l1 != 0 && two_l2 != 0) return fp_grad_term<true, true>(x, l1, two_l2);
  if (l1 != 0) return fp_grad_term<true, false>(x, l1, two_l2);
  if (two_l2 != 0) return fp_grad_term<false, true>(x, l1, two_l2);
  return fp_grad_term<false, false>(x, l1, two_l2);
}

// The bits of grad(w) (g null) or g + grad(w): in float32 for weights that are not float64 when the
// factors fit float32, else in double, then rounded to the storage type. xf is w as float32 (for a
// signalling NaN its bits as stored: widening it to double would quiet it).
static uint64_t expected(int dt, float xf, double x, const double* g, double l1, double l2) {
  if (dt != FP_FLOAT64 && fp_factors_fit_float(l1, l2)) {
    const float t = term(xf, float(l1), float(2.0 * l2));
    return rounded(dt, g ? float(*g) + t : t);
  }
  const double t = term(x, l1, 2.0 * l2);
  return rounded(dt, g ? *g + t : t);
}

static uint64_t expected_at(int dt, const unsigned char* w, int64_t i, const double* g, double l1, double l2) {
  float xf = 0.0f;
  if (dt == FP_FLOAT32) memcpy(&xf, w + 4 * i, 4);
  else if (dt != FP_FLOAT64) {
    uint16_t h;
    memcpy(&h, w + 2 * i, 2);
    xf = dt == FP_FLOAT16 ? fp_f16_to_f32(h) : fp_bf16_to_f32(h);
  }
  return expected(dt, xf, widen(dt, w, i), g, l1, l2);
}

// ---- buffers --------------------------------------------------------------------------------------

// shift bytes of sentinel, then n elements: the block ends exactly where the tensor does.
struct Buffer {
  std::vector<unsigned char>* block = nullptr;
  int shift = 0;
  unsigned char* data() const { return block->data() + shift; }
};

struct Tensor {
  int dt;
  int64_t n;
  std::vector<unsigned char> wb, gb;
  int shift_w, shift_g;  // bytes before the tensor in its block (misaligns it for shift % 16 != 0)
  unsigned char* w() { return wb.data() + shift_w; }
  unsigned char* g() { return gb.data() + shift_g; }
};

constexpr unsigned char kSentinel = 0xCD;

static double sample(std::mt19937_64& rng, int64_t i, bool specials) {
  std::normal_distribution<double> normal(0.0, 2.0);
  double x = normal(rng);
  if (i % 29 == 0) x = (i % 58 == 0) ? 0.0 : -0.0;
  if (specials && i % 11 == 5) x = (i % 22 == 5) ? INFINITY : -INFINITY;
  if (specials && i % 13 == 7) x = NAN;
  if (i % 17 == 3) x = std::ldexp(x, -30);  // fp16 subnormals and flush-to-zero cases
  return x;
}

static void put(int dt, unsigned char* p, int64_t i, double v, uint16_t nan_payload) {
  uint64_t b = rounded(dt, v);
  if (std::isnan(v)) {  // NaNs with payloads and signs: the conversions must keep them as the CPU does
    if (dt == FP_FLOAT16) b = 0x7c00u | (nan_payload & 0x3ffu) | 0x1u | (nan_payload & 0x8000u);
    if (dt == FP_BFLOAT16) b = 0x7f80u | (nan_payload & 0x7fu) | 0x1u | (nan_payload & 0x8000u);
    if (dt == FP_FLOAT32) b = 0x7f800000u | (uint32_t(nan_payload) << 7) | 0x1u;
  }
  memcpy(p + int64_t(fp_dtype_size(dt)) * i, &b, size_t(fp_dtype_size(dt)));
}

static Tensor make_tensor(std::mt19937_64& rng, int dt, int64_t n, int shift_w, int shift_g, bool specials) {
  Tensor t;
  t.dt = dt;
  t.n = n;
  const int es = fp_dtype_size(dt);
  t.shift_w = shift_w * es;
  t.shift_g = shift_g * es;
  t.wb.assign(size_t(t.shift_w + n * es), kSentinel);
  t.gb.assign(size_t(t.shift_g + n * es), kSentinel);
  std::uniform_int_distribution<int> payload(0, 0xffff);
  for (int64_t i = 0; i < n; ++i) {
    put(dt, t.w(), i, sample(rng, i, specials), uint16_t(payload(rng)));
    put(dt, t.g(), i, i % 23 == 1 ? -0.0 : sample(rng, i + 1, specials) * 0.1, uint16_t(payload(rng)));
  }
  return t;
}

static bool head_intact(const std::vector<unsigned char>& b, int shift) {
  for (int k = 0; k < shift; ++k)
    if (b[k] != kSentinel) return false;
  return true;
}

// ---- multi-tensor passes through the real launcher ----------------------------------------------

static uint64_t addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

struct Factors {
  std::vector<double> l1, l2;
  double l1_of(size_t k) const { return l1[l1.size() == 1 ? 0 : k]; }
  double l2_of(size_t k) const { return l2[l2.size() == 1 ? 0 : k]; }
};

static MultiTensorLaunch launch_for(int mode, std::vector<Tensor>& ts, const Factors& f, std::vector<double>& scratch,
                                    void* out, bool out_f64) {
  MultiTensorLaunch p{};
  p.mode = mode;
  for (auto& t : ts) {
    p.w.push_back(addr(t.w()));
    if (mode != 0) p.g.push_back(addr(t.g()));
    p.n.push_back(t.n);
    p.dtype.push_back(t.dt);
  }
  p.l1s = addr(f.l1.data());
  p.l1_count = int64_t(f.l1.size());
  p.l2s = addr(f.l2.data());
  p.l2_count = int64_t(f.l2.size());
  if (mode != 2) {
    scratch.assign(size_t(scratch_bytes(int64_t(ts.size()), 0) / 8), 0.0);
    p.scratch = addr(scratch.data());
    p.scratch_capacity = int64_t(scratch.size() * 8);
    p.out = addr(out);
    p.out_f64 = out_f64;
  }
  p.device = 0;
  p.stream = 0;
  return p;
}

static void run_pass(const std::string& name, int mode, std::vector<Tensor>& ts, const Factors& f) {
  bool all64 = !ts.empty();
  for (auto& t : ts) all64 = all64 && t.dt == FP_FLOAT64;
  std::vector<std::vector<unsigned char>> w0, g0;
  for (auto& t : ts) {
    w0.push_back(t.wb);
    g0.push_back(t.gb);
  }
  std::vector<double> scratch;
  double out64 = -1;
  float out32 = -1;
  MultiTensorLaunch p = launch_for(mode, ts, f, scratch, all64 ? (void*)&out64 : (void*)&out32, all64);
  const long launches_before = emu::g_launches;
  launch_multi_tensor(p);
  int64_t busy_slices = 0;
  for (size_t first = 0; first < ts.size(); first += kSlots) {
    bool any = false;
    for (size_t k = first; k < ts.size() && k < first + kSlots; ++k) any = any || ts[k].n > 0;
    busy_slices += any;
  }
  CHECK(emu::g_launches - launches_before == busy_slices + (mode != 2 ? 1 : 0), "%s: %ld launches for %lld slices",
        name.c_str(), emu::g_launches - launches_before, (long long)busy_slices);
  if (mode != 2) {
    long double ref = 0;
    bool nan = false, inf = false;
    for (size_t k = 0; k < ts.size(); ++k) {
      long double s1 = 0, s2 = 0;
      for (int64_t i = 0; i < ts[k].n; ++i) {
        const double x = widen(ts[k].dt, w0[k].data() + ts[k].shift_w, i);
        s1 += std::fabs(x);
        s2 += (long double)x * x;
      }
      if (f.l1_of(k) != 0) ref += f.l1_of(k) * s1;
      if (f.l2_of(k) != 0) ref += f.l2_of(k) * s2;
    }
    nan = std::isnan((double)ref);
    inf = std::isinf((double)ref);
    const double got = all64 ? out64 : out32;
    if (nan) CHECK(std::isnan(got), "%s: value %.17g, want NaN", name.c_str(), got);
    else if (inf) CHECK(got == (double)ref, "%s: value %.17g, want %.17g", name.c_str(), got, (double)ref);
    else
      CHECK(std::fabs(got - (double)ref) <= (all64 ? 1e-12 : 2e-6) * std::fabs((double)ref) + 1e-300,
            "%s: value %.17g vs reference %.17g", name.c_str(), got, (double)ref);
    if (mode == 0) {  // the same launch again: the same bits
      double again64 = -2;
      float again32 = -2;
      MultiTensorLaunch q = launch_for(0, ts, f, scratch, all64 ? (void*)&again64 : (void*)&again32, all64);
      launch_multi_tensor(q);
      CHECK(all64 ? memcmp(&again64, &out64, 8) == 0 : memcmp(&again32, &out32, 4) == 0, "%s: value not repeatable",
            name.c_str());
    }
  }
  for (size_t k = 0; k < ts.size(); ++k) {
    Tensor& t = ts[k];
    CHECK(t.wb == w0[k], "%s: tensor %zu: w or the bytes around it changed", name.c_str(), k);
    CHECK(head_intact(t.gb, t.shift_g), "%s: tensor %zu: wrote before g", name.c_str(), k);
    const double l1 = f.l1_of(k), l2 = f.l2_of(k);
    const bool untouched = mode == 0 || (mode == 1 && l1 == 0 && l2 == 0);
    for (int64_t i = 0; i < t.n; ++i) {
      const uint64_t got = bits_of(t.dt, t.g(), i);
      const unsigned char* gold = g0[k].data() + t.shift_g;
      uint64_t want;
      if (untouched) want = bits_of(t.dt, gold, i);
      else {
        const double old = widen(t.dt, gold, i);
        want = expected_at(t.dt, t.w(), i, mode == 1 ? &old : nullptr, l1, l2);
      }
      CHECK(got == want, "%s: tensor %zu (dtype %d, n %lld, l1 %g, l2 %g) element %lld: bits %llx, want %llx",
            name.c_str(), k, t.dt, (long long)t.n, l1, l2, (long long)i, (unsigned long long)got,
            (unsigned long long)want);
      if (got != want) break;
    }
  }
}

static void free_list_cases(std::mt19937_64& rng) {
  const int64_t C = 8192;  // fp32 chunk; other dtypes' chunks are 2x / 0.5x this
  const std::vector<int64_t> sizes = {0, 1, 3, 17, C - 1, C, C + 1, 5, 0, 2 * C + 7, 65, 4 * C, 97, 0, 33, 3 * C + 3};
  // Tensor k has dtype k % 4. l1 = 1e-40 (below float32's normal range) sends float32 tensor 12's
  // gradient the double way.
  const std::vector<double> l1_per = {0.0, 0.013, 0.5, 0.0, 1e-3, 2.0, 0.25, 0.0, 0.7, 0.1, 0.0, 0.3, 1e-40, 0.0, 0.4, 0.9};
  const std::vector<double> l2_per = {0.021, 0.0, 1.5, 0.0, 0.25, 0.0, 0.5, 0.0, 0.3, 0.2, 0.7, 0.0, 0.3, 0.3, 0.0, 0.2};
  const Factors factor_sets[] = {{l1_per, l2_per}, {{0.013}, {0.021}}, {{0.0}, {0.0}}, {{0.5}, l2_per}};
  for (int sms : {1, 2, 5}) {
    emu::g_multiprocessors = sms;
    for (bool reverse : {false, true}) {
      emu::g_reverse = reverse;
      for (int mode : {0, 1, 2}) {
        for (int fs = 0; fs < 4; ++fs) {
          const bool specials = (sms + fs) % 2 == 1;
          std::vector<Tensor> ts;
          for (size_t k = 0; k < sizes.size(); ++k)
            ts.push_back(make_tensor(rng, int(k % 4), sizes[k], k % 3 == 1 ? 1 : (k % 5 == 2 ? 3 : 0),
                                     k % 4 == 3 ? 1 : 0, specials));
          run_pass("mode " + std::to_string(mode) + " sms " + std::to_string(sms) + (reverse ? " reverse" : "") +
                       " factors " + std::to_string(fs) + (specials ? " specials" : ""),
                   mode, ts, factor_sets[fs]);
        }
      }
    }
  }
  emu::g_reverse = false;
  emu::g_multiprocessors = 3;
  for (int mode : {0, 1}) {  // the float64 result
    std::vector<Tensor> ts;
    for (int64_t n : {C + 3, int64_t(0), int64_t(10), 2 * C}) ts.push_back(make_tensor(rng, FP_FLOAT64, n, 0, 0, false));
    run_pass("fp64 only", mode, ts, {{0.3}, {0.7}});
  }
}

// More tensors than one launch holds: the fixed partition, its factor offsets and partials.
static void long_list_cases(std::mt19937_64& rng) {
  emu::g_multiprocessors = 2;
  const size_t count = 2 * kSlots + 77;
  std::uniform_int_distribution<int> size(0, 40);
  std::uniform_real_distribution<double> factor(0.0, 1.0);
  Factors f;
  for (size_t k = 0; k < count; ++k) {
    f.l1.push_back(k % 5 == 0 ? 0.0 : factor(rng));
    f.l2.push_back(k % 7 == 0 ? 0.0 : factor(rng));
  }
  for (int mode : {0, 1, 2}) {
    std::vector<Tensor> ts;
    for (size_t k = 0; k < count; ++k)
      ts.push_back(make_tensor(rng, int(k % 4), k == kSlots + 3 ? 3 * 16384 + 1 : size(rng), int(k % 2), 0, false));
    for (size_t k = kSlots; k < 2 * kSlots; ++k) ts[k].n = 0, ts[k].wb.resize(ts[k].shift_w), ts[k].gb.resize(0);
    ts[kSlots + 3] = make_tensor(rng, FP_FLOAT16, 3 * 16384 + 1, 0, 0, false);  // one busy tensor in slice 1
    run_pass("long list mode " + std::to_string(mode), mode, ts, f);
  }
  emu::g_multiprocessors = 3;
}

// ---- out = grad(w) for one tensor --------------------------------------------------------------

static void grad_cases(std::mt19937_64& rng) {
  for (int sms : {1, 4}) {
    emu::g_multiprocessors = sms;
    for (int dt = 0; dt < 4; ++dt)
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(33), int64_t(4099)})
        for (int shift : {0, 1, 2})  // 1: w misaligned; 2: out misaligned
          for (auto [l1, l2] : {std::pair{0.013, 0.021}, {0.5, 0.0}, {0.0, 1.5}, {0.0, 0.0}, {1e-40, 0.3}}) {
            Tensor t = make_tensor(rng, dt, n, shift == 1, shift == 2, true);
            const std::vector<unsigned char> w0 = t.wb;
            const double l1v = l1, l2v = l2;
            launch_grad(addr(t.w()), addr(t.g()), n, dt, addr(&l1v), addr(&l2v), 0, 0);
            CHECK(t.wb == w0 && head_intact(t.gb, t.shift_g), "grad: wrote outside out");
            for (int64_t i = 0; i < n; ++i) {
              const uint64_t got = bits_of(dt, t.g(), i), want = expected_at(dt, t.w(), i, nullptr, l1, l2);
              CHECK(got == want, "grad dtype %d n %lld shift %d l1 %g l2 %g element %lld: bits %llx want %llx", dt,
                    (long long)n, shift, l1, l2, (long long)i, (unsigned long long)got, (unsigned long long)want);
              if (got != want) break;
            }
          }
  }
  emu::g_multiprocessors = 3;
}

// ---- the double rounding of half types on the double path ------------------------------------------

// float16 w = 1 + 2^-10 with l1 = 1e-40 (so the gradient goes the double way) and 2 * l2 chosen so
// that t = 2 * l2 * w lies just below the float16 tie 1 + 3 * 2^-11, within half a float32 ulp:
// rounded to nearest float32 first it is the tie, which float16 rounds to even (0x3c02); any other
// first rounding (toward zero, or straight to float16) gives 0x3c01.
static void double_rounding_cases(std::mt19937_64& rng) {
  const double l1 = 1e-40, l2 = 0.5002439024390243;
  const uint16_t w_bits = 0x3c01, want = 0x3c02;
  const int64_t n = 40;
  std::vector<Tensor> ts;
  ts.push_back(make_tensor(rng, FP_FLOAT16, n, 0, 0, false));
  for (int64_t i = 0; i < n; ++i) memcpy(ts[0].w() + 2 * i, &w_bits, 2);
  run_pass("double rounding (overwrite)", 2, ts, {{l1}, {l2}});
  launch_grad(addr(ts[0].w()), addr(ts[0].g()), n, FP_FLOAT16, addr(&l1), addr(&l2), 0, 0);
  for (int64_t i = 0; i < n; ++i)
    CHECK(bits_of(FP_FLOAT16, ts[0].g(), i) == want, "double rounding (grad): out[%lld] = %llx, want %x", (long long)i,
          (unsigned long long)bits_of(FP_FLOAT16, ts[0].g(), i), want);
}

// ---- errors raise before any launch and leave memory alone --------------------------------------

static void error_cases(std::mt19937_64& rng) {
  std::vector<Tensor> ts;
  ts.push_back(make_tensor(rng, FP_FLOAT32, 100, 0, 0, false));
  ts.push_back(make_tensor(rng, FP_FLOAT16, 50, 0, 0, false));
  const Factors f{{0.5}, {0.25}};
  const auto g0 = ts[0].gb, g1 = ts[1].gb;
  float out = 7.0f;
  std::vector<double> scratch;
  auto expect_rejected = [&](const char* what, MultiTensorLaunch p) {
    const long launches = emu::g_launches;
    bool raised = false;
    try {
      launch_multi_tensor(p);
    } catch (const std::invalid_argument&) {
      raised = true;
    }
    CHECK(raised && emu::g_launches == launches, "%s: not rejected before launching", what);
    CHECK(ts[0].gb == g0 && ts[1].gb == g1 && out == 7.0f, "%s: memory changed", what);
  };
  MultiTensorLaunch p = launch_for(1, ts, f, scratch, &out, false);
  auto q = p;
  q.g[1] = q.w[1] + 20;
  expect_rejected("overlap in the last tensor", q);
  q = p;
  q.dtype[1] = 4;
  expect_rejected("bad dtype", q);
  q = p;
  q.scratch_capacity -= 8;
  expect_rejected("short scratch", q);
  q = p;
  q.n[1] = -1;
  expect_rejected("negative size", q);
  q = p;
  q.w[1] += 1;
  expect_rejected("misaligned weight", q);
  q = p;
  q.l2_count = 3;
  expect_rejected("factor count", q);
  const double l = 0.5;
  const long launches = emu::g_launches;
  bool raised = false;
  try {
    launch_grad(addr(ts[0].w()), addr(ts[0].w()) + 8, 100, FP_FLOAT32, addr(&l), addr(&l), 0, 0);
  } catch (const std::invalid_argument&) {
    raised = true;
  }
  CHECK(raised && emu::g_launches == launches, "grad: overlap not rejected before launching");
}

// ---- index arithmetic past 2^32 elements ---------------------------------------------------------

// The float16 elements [w0, n) of a tensor of n elements, in an address range reserved for all n
// of them and mapped only there (plus the slack before w0 in its page): any access outside the
// window faults. The tensor ends exactly at a page end.
struct Window {
  unsigned char* reservation;
  size_t reserved;
  unsigned char* base;  // element 0
  Window(int64_t n, int64_t w0) {
    const size_t page = 4096, bytes = size_t(n) * 2, lead = (page - bytes % page) % page;
    reserved = lead + bytes;
    reservation = static_cast<unsigned char*>(
        mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (reservation == MAP_FAILED) { perror("mmap"); exit(2); }
    base = reservation + lead;
    const uintptr_t lo = reinterpret_cast<uintptr_t>(base + w0 * 2) & ~uintptr_t(page - 1);
    const uintptr_t hi = reinterpret_cast<uintptr_t>(base) + bytes;
    if (mprotect(reinterpret_cast<void*>(lo), hi - lo, PROT_READ | PROT_WRITE) != 0) { perror("mprotect"); exit(2); }
  }
  ~Window() { munmap(reservation, reserved); }
  unsigned char* at(int64_t i) const { return base + i * 2; }
  uint16_t get(int64_t i) const { uint16_t h; memcpy(&h, at(i), 2); return h; }
  void set(int64_t i, uint16_t h) { memcpy(at(i), &h, 2); }
};

// A float16 tensor of 2^32 + 3 * 16384 + 8 elements whose memory exists only in the window
// [W0, n) (Window), and only the blocks whose elements lie in the window run (with as many
// multiprocessors as it takes for one block per chunk, or per 256 vectors in grad, so no block
// straddles the window's start). Holding (i % 7) - 3, every sum is an exact integer, so the value
// is exact; an index or offset that wrapped at 2^31 or 2^32 faults or reads the wrong residues.
// (2^32 real elements would take minutes of both cores here; the window takes milliseconds.)
static void large_index_cases() {
  const int64_t chunk = 16384;  // fp16 elements per chunk
  const int64_t n = (int64_t(1) << 32) + 3 * chunk + 8;  // a multiple of 8: grad's vector tail is empty
  const int64_t W0 = (int64_t(1) << 32) - chunk;
  emu::g_multiprocessors = 1 << 22;
  for (int shift : {0, 1}) {  // 1: the tensor starts one element in, so no 16-byte access is legal
    const int64_t tn = n - shift;  // the tensor: elements [shift, n) of the base
    Window w(n, W0), g(n, W0), o(n, W0);
    for (int64_t i = W0; i < n; ++i) {
      w.set(i, fp_f32_to_f16(float(i % 7 - 3)));
      g.set(i, 0);
      o.set(i, 0xEEEE);
    }
    const uint64_t w_tensor = addr(w.at(shift)), g_tensor = addr(g.at(shift)), o_tensor = addr(o.at(shift));
    const int64_t first_block = (W0 - shift + chunk - 1) / chunk;  // the first chunk inside the window
    emu::g_block_filter = [&](unsigned, unsigned b) { return int64_t(b) >= first_block; };
    long double s1 = 0, s2 = 0;
    for (int64_t i = first_block * chunk; i < tn; ++i) {
      const int64_t x = (i + shift) % 7 - 3;
      s1 += std::abs(x);
      s2 += x * x;
    }
    const double l1 = 0.5, l2 = 0.25, want = double(l1 * s1 + l2 * s2);
    for (int mode : {0, 1}) {
      MultiTensorLaunch p{};
      p.mode = mode;
      p.w = {w_tensor};
      if (mode == 1) p.g = {g_tensor};
      p.n = {tn};
      p.dtype = {FP_FLOAT16};
      p.l1s = addr(&l1);
      p.l1_count = 1;
      p.l2s = addr(&l2);
      p.l2_count = 1;
      std::vector<double> scratch(size_t(scratch_bytes(1, 0) / 8), 0.0);
      float out = -1;
      p.scratch = addr(scratch.data());
      p.scratch_capacity = int64_t(scratch.size() * 8);
      p.out = addr(&out);
      p.device = 0;
      launch_multi_tensor(p);
      CHECK(double(out) == double(float(want)), "past 2^32 (shift %d, mode %d): value %.9g, want %.9g", shift, mode,
            double(out), want);
    }
    const double zero = 0.0;
    for (int64_t i = first_block * chunk; i < tn; ++i) {  // g = 0 + grad(w) from the accumulate pass
      const uint16_t got = g.get(i + shift);
      const uint16_t expect = uint16_t(expected(FP_FLOAT16, float((i + shift) % 7 - 3), double((i + shift) % 7 - 3), &zero, l1, l2));
      CHECK(got == expect, "past 2^32 (shift %d): g[%lld] = %x, want %x", shift, (long long)i, got, expect);
      if (got != expect) break;
    }
    // grad: block b covers 256 vectors of 8 elements, or 256 elements where no vector is legal
    const int64_t per_block = shift ? 256 : 2048;
    const int64_t first_g = (W0 - shift + per_block - 1) / per_block;
    emu::g_block_filter = [&](unsigned, unsigned b) { return int64_t(b) >= first_g; };
    launch_grad(w_tensor, o_tensor, tn, FP_FLOAT16, addr(&l1), addr(&l2), 0, 0);
    for (int64_t i = first_g * per_block; i < tn; ++i) {
      const uint16_t got = o.get(i + shift);
      const uint16_t expect = uint16_t(expected(FP_FLOAT16, float((i + shift) % 7 - 3), double((i + shift) % 7 - 3), nullptr, l1, l2));
      CHECK(got == expect, "grad past 2^32 (shift %d): out[%lld] = %x, want %x", shift, (long long)i, got, expect);
      if (got != expect) break;
    }
    emu::g_block_filter = nullptr;
  }
  emu::g_multiprocessors = 3;
}

// ---- the proximal step (launch_prox) ----------------------------------------------------------

// The bits of prox(w) for one element, as penalty_math.h describes it: no write for lr = 0 or
// l1 = l2 = 0, NaN kept, float32 arithmetic for weights that are not float64 when T = lr*l1 and
// S = 2*lr*l2 fit float32, else double, then rounded to the storage type (through float32).
static uint64_t prox_expected(int dt, const unsigned char* w, int64_t i, double lr, double l1, double l2) {
  const uint64_t old = bits_of(dt, w, i);
  const double x = widen(dt, w, i);
  if (!fp_prox_writes(lr, l1, l2) || std::isnan(x)) return old;
  const double t = lr * l1, s = 2.0 * lr * l2, d = 1.0 + s;
  if (dt != FP_FLOAT64 && fp_prox_fits_float(t, s)) return rounded(dt, fp_prox_element<float>(float(x), float(t), float(d)));
  return rounded(dt, fp_prox_element<double>(x, t, d));
}

struct ProxFactors {
  std::vector<double> lr, l1, l2;
  static double at(const std::vector<double>& v, size_t k) { return v[v.size() == 1 ? 0 : k]; }
};

// Runs launch_prox on ts and checks: the launches, every element's bits, the bytes before each
// tensor, the zero count, and that the value equals the value pass's over the new weights bit for
// bit. refused: a factor is invalid, so nothing may change and the results are NaN and -1.
static void run_prox(const std::string& name, std::vector<Tensor>& ts, const ProxFactors& f, bool refused = false) {
  bool all64 = !ts.empty();
  for (auto& t : ts) all64 = all64 && t.dt == FP_FLOAT64;
  std::vector<std::vector<unsigned char>> w0;
  for (auto& t : ts) w0.push_back(t.wb);
  ProxLaunch p{};
  for (auto& t : ts) {
    p.w.push_back(addr(t.w()));
    p.n.push_back(t.n);
    p.dtype.push_back(t.dt);
  }
  p.lrs = addr(f.lr.data());
  p.lr_count = int64_t(f.lr.size());
  p.l1s = addr(f.l1.data());
  p.l1_count = int64_t(f.l1.size());
  p.l2s = addr(f.l2.data());
  p.l2_count = int64_t(f.l2.size());
  std::vector<double> scratch(size_t(prox_scratch_bytes(int64_t(ts.size()), 0) / 8), 0.0);
  p.scratch = addr(scratch.data());
  p.scratch_capacity = int64_t(scratch.size() * 8);
  double out64 = -1;
  float out32 = -1;
  long long zeros = -7;
  p.out = all64 ? addr(&out64) : addr(&out32);
  p.out_f64 = all64;
  p.zeros_out = addr(&zeros);
  const long launches_before = emu::g_launches;
  launch_prox(p);
  int64_t busy_slices = 0;
  for (size_t first = 0; first < ts.size(); first += kSlots) {
    bool any = false;
    for (size_t k = first; k < ts.size() && k < first + kSlots; ++k) any = any || ts[k].n > 0;
    busy_slices += any;
  }
  CHECK(emu::g_launches - launches_before == busy_slices + 1, "%s: %ld launches for %lld slices", name.c_str(),
        emu::g_launches - launches_before, (long long)busy_slices);
  const double value = all64 ? out64 : out32;
  if (refused) {
    for (size_t k = 0; k < ts.size(); ++k) CHECK(ts[k].wb == w0[k], "%s: tensor %zu written", name.c_str(), k);
    CHECK(std::isnan(value) && zeros == -1, "%s: value %g, zeros %lld (want NaN, -1)", name.c_str(), value, zeros);
    return;
  }
  long long want_zeros = 0;
  for (size_t k = 0; k < ts.size(); ++k) {
    Tensor& t = ts[k];
    CHECK(head_intact(t.wb, t.shift_w), "%s: tensor %zu: wrote before w", name.c_str(), k);
    const double lr = ProxFactors::at(f.lr, k), l1 = ProxFactors::at(f.l1, k), l2 = ProxFactors::at(f.l2, k);
    for (int64_t i = 0; i < t.n; ++i) {
      const uint64_t got = bits_of(t.dt, t.w(), i), want = prox_expected(t.dt, w0[k].data() + t.shift_w, i, lr, l1, l2);
      want_zeros += widen(t.dt, t.w(), i) == 0.0;
      CHECK(got == want, "%s: tensor %zu (dtype %d, n %lld, lr %g, l1 %g, l2 %g) element %lld: bits %llx, want %llx",
            name.c_str(), k, t.dt, (long long)t.n, lr, l1, l2, (long long)i, (unsigned long long)got,
            (unsigned long long)want);
      if (got != want) break;
    }
  }
  CHECK(zeros == want_zeros, "%s: %lld zeros, want %lld", name.c_str(), zeros, want_zeros);
  std::vector<double> value_scratch;
  double again64 = -2;
  float again32 = -2;
  const Factors value_factors{f.l1, f.l2};
  MultiTensorLaunch q = launch_for(0, ts, value_factors, value_scratch, all64 ? (void*)&again64 : (void*)&again32, all64);
  launch_multi_tensor(q);
  const double again = all64 ? again64 : again32;
  CHECK((all64 ? memcmp(&again64, &out64, 8) == 0 : memcmp(&again32, &out32, 4) == 0) ||
            (std::isnan(again) && std::isnan(value)),
        "%s: prox value %.17g, value pass over the result %.17g", name.c_str(), value, again);
}

static void prox_cases(std::mt19937_64& rng) {
  const int64_t C = 8192;
  const std::vector<int64_t> sizes = {0, 1, 3, 17, C - 1, C, C + 1, 5, 0, 2 * C + 7, 65, 4 * C, 97, 0, 33, 3 * C + 3};
  // Tensor k has dtype k % 4. Per tensor: lr = 0 and l1 = l2 = 0 (no write), T below float32's
  // normal range, T above 2^100 and S above 2^100 (the double way for 32/16-bit weights; float32
  // tensor 12's quotients then differ in float32 arithmetic), a decay so strong that fp16/bf16
  // results round to 0, and ordinary steps.
  const std::vector<double> lr_per = {0.5, 0.0, 0.1, 1.0, 0.5, 1.0, 1e-3, 0.25, 0.5, 0.1, 1.0, 0.3, 1.0, 0.5, 0.2, 0.9};
  const std::vector<double> l1_per = {0.3, 1.0, 2.0, 1e-40, 0.0, 0.0, 1e35, 0.0, 0.7, 0.1, 0.0, 0.3, 0.0, 0.05, 0.4, 0.9};
  const std::vector<double> l2_per = {0.0, 1.0, 0.7, 0.3, 0.25, 0.0, 0.0, 0.0, 0.3, 0.2, 40.0, 0.0, 1e31, 0.3, 0.0, 0.2};
  const ProxFactors factor_sets[] = {{lr_per, l1_per, l2_per}, {{0.1}, {0.5}, {0.25}}, {{0.0}, {0.5}, {0.5}},
                                     {{0.5}, l1_per, {0.1}}};
  for (auto [sms, reverse] : {std::pair{1, false}, {1, true}, {5, false}}) {
    emu::g_multiprocessors = sms;
    {
      emu::g_reverse = reverse;
      for (int fs = 0; fs < 4; ++fs) {
        const bool specials = (sms + fs + reverse) % 2 == 1;
        std::vector<Tensor> ts;
        for (size_t k = 0; k < sizes.size(); ++k)
          ts.push_back(make_tensor(rng, int(k % 4), sizes[k], k % 3 == 1 ? 1 : (k % 5 == 2 ? 3 : 0), 0, specials));
        run_prox("prox sms " + std::to_string(sms) + (reverse ? " reverse" : "") + " factors " + std::to_string(fs) +
                     (specials ? " specials" : ""),
                 ts, factor_sets[fs]);
      }
    }
  }
  emu::g_reverse = false;
  emu::g_multiprocessors = 3;
  std::vector<Tensor> ts;
  for (int64_t n : {C + 3, int64_t(0), int64_t(10), 2 * C}) ts.push_back(make_tensor(rng, FP_FLOAT64, n, 0, 0, true));
  run_prox("prox fp64 only", ts, {{0.2}, {0.3}, {0.7}});

  // More tensors than one launch holds, with per-tensor factors: the slices' factor offsets.
  emu::g_multiprocessors = 2;
  const size_t count = 2 * kSlots + 77;
  std::uniform_int_distribution<int> size(0, 40);
  std::uniform_real_distribution<double> factor(0.0, 1.0);
  ProxFactors f;
  for (size_t k = 0; k < count; ++k) {
    f.lr.push_back(k % 11 == 0 ? 0.0 : factor(rng));
    f.l1.push_back(k % 5 == 0 ? 0.0 : factor(rng));
    f.l2.push_back(k % 7 == 0 ? 0.0 : factor(rng));
  }
  ts.clear();
  for (size_t k = 0; k < count; ++k) ts.push_back(make_tensor(rng, int(k % 4), size(rng), int(k % 2), 0, false));
  ts[kSlots + 3] = make_tensor(rng, FP_FLOAT16, 3 * 16384 + 1, 0, 0, false);
  run_prox("prox long list", ts, f);

  // A factor that is not valid, in the last slice only: no launch writes anything.
  for (auto [what, lr, l1] : {std::tuple{"negative lr", -0.5, 0.5}, {"lr*l1 overflows", 1e200, 1e200},
                              {"NaN l1", 0.5, double(NAN)}}) {
    ProxFactors g = f;
    g.lr[2 * kSlots + 5] = lr;
    g.l1[2 * kSlots + 5] = l1;
    run_prox(std::string("prox refused: ") + what, ts, g, true);
  }
  emu::g_multiprocessors = 3;
}

static void prox_error_cases(std::mt19937_64& rng) {
  std::vector<Tensor> ts;
  ts.push_back(make_tensor(rng, FP_FLOAT32, 100, 0, 0, false));
  ts.push_back(make_tensor(rng, FP_FLOAT16, 50, 0, 0, false));
  const auto w0 = ts[0].wb, w1 = ts[1].wb;
  const double lr = 0.5, l1 = 0.5, l2 = 0.25;
  float out = 7.0f;
  long long zeros = 7;
  std::vector<double> scratch(size_t(prox_scratch_bytes(2, 0) / 8));
  ProxLaunch p{{addr(ts[0].w()), addr(ts[1].w())}, {100, 50}, {FP_FLOAT32, FP_FLOAT16}, addr(&lr), 1, addr(&l1), 1,
               addr(&l2), 1, addr(scratch.data()), int64_t(scratch.size() * 8), addr(&out), false, addr(&zeros), 0, 0};
  auto expect_rejected = [&](const char* what, ProxLaunch q) {
    const long launches = emu::g_launches;
    bool raised = false;
    try {
      launch_prox(q);
    } catch (const std::invalid_argument&) {
      raised = true;
    }
    CHECK(raised && emu::g_launches == launches, "prox %s: not rejected before launching", what);
    CHECK(ts[0].wb == w0 && ts[1].wb == w1 && out == 7.0f && zeros == 7, "prox %s: memory changed", what);
  };
  auto q = p;
  q.w[1] = q.w[0] + 8;
  q.dtype[1] = FP_FLOAT32;
  expect_rejected("tensors overlapping", q);
  q = p;
  q.dtype[1] = 4;
  expect_rejected("bad dtype", q);
  q = p;
  q.scratch_capacity -= 8;
  expect_rejected("short scratch", q);
  q = p;
  q.zeros_out = 0;
  expect_rejected("null zero count", q);
  q = p;
  q.lr_count = 3;
  expect_rejected("factor count", q);
  q = p;
  q.n.pop_back();
  expect_rejected("lengths", q);
}

int main(int argc, char** argv) {
  quick = argc > 1 && std::string(argv[1]) == "quick";
  std::mt19937_64 rng(42);
  error_cases(rng);
  large_index_cases();
  long_list_cases(rng);
  grad_cases(rng);
  double_rounding_cases(rng);
  free_list_cases(rng);
  prox_error_cases(rng);
  prox_cases(rng);
  printf("launches: %ld, vector loads: %ld\n", emu::g_launches, emu::g_vector_loads);
  CHECK(emu::g_vector_loads > 0, "the 16-byte path never ran");
  printf("%s (%d failures)\n", failures ? "FAILED" : "all passed", failures);
  return failures ? 1 : 0;
}
