#include "cpu/thread_pool.h"

#include <algorithm>
#include <atomic>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "cpu/config.h"
#include "fastpenalty/fastpenalty.h"
#include "fastpenalty/fastpenalty_experimental.h"

namespace fp::cpu {
namespace {

// Which way the last call that had more than one part ran them (fp_experimental_last_pool).
std::atomic<const char*> g_last_pool{"none"};
std::atomic<bool> g_openmp_allowed{true};  // fp_experimental_use_openmp
std::atomic<bool> g_forked_child{false};

// The OpenMP runtime the process already has, when it has one in its global scope: libgomp, as
// torch loads it. Running the parts on its team rather than on this pool's workers matters on a
// small machine: after any torch op, torch's OpenMP worker spins on its core for milliseconds, so
// a worker of this pool shared a core with it (2-core AMD EPYC Zen 3, float32 on 1e8 elements,
// each call right after a torch op: value at 0.80 of torch.sum and accumulate at 0.81 of add_,
// against 0.94 and 0.94 on torch's team; bench/results/ab_openmp_team_*). Looked up, never
// loaded: a process without it keeps this pool. GOMP_parallel and omp_get_thread_num /
// omp_get_num_threads / omp_get_max_threads are libgomp's stable C ABI. A call with more parts
// than the runtime's team size (omp_get_max_threads: torch.set_num_threads) stays on this pool: a
// larger team would make libgomp create threads, and libgomp ends the process when it cannot
// (this pool runs on fewer threads instead), and the extra threads would spin after every op.
struct OpenMp {
  void (*parallel)(void (*)(void*), void*, unsigned, unsigned) = nullptr;
  int (*thread_num)() = nullptr;
  int (*num_threads)() = nullptr;
  int (*max_threads)() = nullptr;
};

// Looked up again on every multi-part call until found (a few dlsym calls against work of at least
// kParallelMinElements elements), since torch may be imported after the first call. Called with
// the pool's run mutex held.
const OpenMp& openmp() {
  static OpenMp o;
  if (!o.parallel) {
    OpenMp r;
    r.parallel = reinterpret_cast<decltype(r.parallel)>(dlsym(RTLD_DEFAULT, "GOMP_parallel"));
    r.thread_num = reinterpret_cast<decltype(r.thread_num)>(dlsym(RTLD_DEFAULT, "omp_get_thread_num"));
    r.num_threads = reinterpret_cast<decltype(r.num_threads)>(dlsym(RTLD_DEFAULT, "omp_get_num_threads"));
    r.max_threads = reinterpret_cast<decltype(r.max_threads)>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    if (r.parallel && r.thread_num && r.num_threads && r.max_threads) o = r;
  }
  return o;
}

// libgomp's team does not survive fork() (a child that enters it hangs): a child runs on this
// pool's workers, whatever fp_experimental_use_openmp says. Registered at load, so a fork before
// the first call is covered too.
const int g_openmp_fork_guard = pthread_atfork(nullptr, nullptr, [] { g_forked_child.store(true); });

struct OpenMpJob {
  PartFn fn;
  void* ctx;
  int parts;
  const OpenMp* omp;
};

// Each member of the team runs the parts of its index; a team smaller than asked runs them all.
void run_team_member(void* p) {
  const auto& job = *static_cast<const OpenMpJob*>(p);
  const int size = std::max(job.omp->num_threads(), 1);
  for (int part = job.omp->thread_num(); part < job.parts; part += size) job.fn(job.ctx, part, job.parts);
}

int default_threads() {
  if (const int n = env_config().num_threads; n >= 1) return n;
  int cores = int(std::thread::hardware_concurrency());
#ifdef CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) cores = CPU_COUNT(&set);
#endif
  return std::clamp(cores, 1, int(FP_MAX_THREADS));
}

class Pool {
 public:
  explicit Pool(int n) : threads_(n) {}

  int threads() const { return threads_; }

  void set_threads(int n) {
    std::lock_guard<std::mutex> busy(run_mutex_);
    stop_workers();
    threads_ = n;
  }

  void run(int parts, PartFn fn, void* ctx) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (parts <= 1 || !busy.owns_lock()) {  // single piece, or another caller holds the pool
      for (int p = 0; p < parts; ++p) fn(ctx, p, parts);
      if (parts > 1) g_last_pool.store("caller");
      return;
    }
    if (const OpenMp& omp = openmp();
        omp.parallel && g_openmp_allowed.load() && !g_forked_child.load() && parts <= omp.max_threads()) {
      OpenMpJob job{fn, ctx, parts, &omp};
      omp.parallel(run_team_member, &job, unsigned(parts), 0);
      g_last_pool.store("openmp");
      return;
    }
    g_last_pool.store("threads");
    start_workers();
    // Workers that could not be started (thread creation failed) simply leave fewer parts.
    const int available = int(workers_.size()) + 1;
    if (parts > available) parts = available;
    if (parts <= 1) {
      fn(ctx, 0, 1);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m_);
      fn_ = fn;
      ctx_ = ctx;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
    }
    start_cv_.notify_all();
    fn(ctx, 0, parts);
    std::unique_lock<std::mutex> lock(m_);
    done_cv_.wait(lock, [&] { return pending_ == 0; });
  }


 private:
  // Called with run_mutex_ held, so generation_ cannot move until the new workers have recorded it.
  // A thread that cannot be created (EAGAIN under RLIMIT_NPROC, out of memory) ends the attempt:
  // the pool runs on the workers it has, and on the caller alone if it has none. It does not retry
  // until the thread count is set again, so a failing clone() is not paid on every call.
  void start_workers() {
    if (started_) return;
    started_ = true;
    stop_ = false;
    const uint64_t gen = generation_;
    try {
      workers_.reserve(size_t(threads_ - 1));
      for (int i = 1; i < threads_; ++i) workers_.emplace_back([this, i, gen] { worker_loop(i, gen); });
    } catch (const std::exception&) {  // std::system_error or std::bad_alloc
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    start_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    started_ = false;
  }

  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      PartFn fn;
      void* ctx;
      int parts;
      {
        std::unique_lock<std::mutex> lock(m_);
        start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        fn = fn_;
        ctx = ctx_;
        parts = parts_;
      }
      if (index >= parts) continue;
      fn(ctx, index, parts);
      std::lock_guard<std::mutex> lock(m_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  int threads_;
  std::mutex run_mutex_;  // one call at a time owns the workers
  std::mutex m_;
  std::condition_variable start_cv_, done_cv_;
  uint64_t generation_ = 0;
  PartFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int parts_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  bool started_ = false;  // start_workers() ran since the last thread-count change
  std::vector<std::thread> workers_;
};

Pool* g_pool = nullptr;
std::once_flag g_pool_once;

void reset_pool_in_child() {
  // The parent's pool (and its locks) belong to threads that do not exist here: start afresh and
  // leak the old object rather than touch its mutexes.
  Pool* old = g_pool;
  g_pool = new Pool(old ? old->threads() : default_threads());
}

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool = new Pool(default_threads());
    pthread_atfork(nullptr, nullptr, reset_pool_in_child);
  });
  return *g_pool;
}

}  // namespace

int pool_num_threads() { return pool().threads(); }
void pool_set_num_threads(int n) { pool().set_threads(n < 1 ? 1 : n); }
void pool_run(int parts, PartFn fn, void* ctx) { pool().run(parts, fn, ctx); }

}  // namespace fp::cpu

extern "C" {
void fp_experimental_use_openmp(int enabled) { fp::cpu::g_openmp_allowed.store(enabled != 0); }
const char* fp_experimental_last_pool(void) { return fp::cpu::g_last_pool.load(); }
}
