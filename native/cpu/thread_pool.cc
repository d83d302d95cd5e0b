#include "thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace onestep {

namespace {
thread_local bool tInsideLoop = false;

int envInt(const char* name, int lo, int hi, int dflt) {
  if (const char* e = std::getenv(name)) {
    char* end = nullptr;
    const long n = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && n >= lo && n <= hi) return (int)n;
  }
  return dflt;
}

int defaultThreads() {
  const unsigned hc = std::thread::hardware_concurrency();
  return envInt("ONESTEP_NUM_THREADS", 1, 1024, hc ? (int)hc : 1);
}

inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
}  // namespace

ThreadPool::ThreadPool(int threads, int spinMicros) : spinMicros_(std::max(0, spinMicros)) {
  const int workers = std::max(0, threads - 1);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { workerLoop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  // Never destroyed: worker threads must not be joined during static destruction at exit.
  static ThreadPool* pool = new ThreadPool(defaultThreads(), envInt("ONESTEP_SPIN_US", 0, 100000, 200));
  return *pool;
}

template <typename Pred>
bool ThreadPool::spinUntil(Pred pred) const {
  if (pred()) return true;
  if (spinMicros_ == 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(spinMicros_);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpuRelax();
    }
    if (std::chrono::steady_clock::now() >= deadline) return pred();
  }
}

void ThreadPool::runChunks(int thread) {
  const bool wasInside = tInsideLoop;
  tInsideLoop = true;
  try {
    for (;;) {
      const int64_t begin = next_.fetch_add(chunk_);
      if (begin >= n_) break;
      (*fn_)(begin, std::min(n_, begin + chunk_), thread);
    }
  } catch (...) {
    // never let an exception end a thread (std::terminate): hand the first one to the caller
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
    next_.store(n_);
  }
  tInsideLoop = wasInside;
}

// The handshakes below are Dekker-style on sequentially consistent atomics: a side that is about
// to sleep announces it (sleepers_, callerSleeps_) before it checks its condition once more under
// the mutex, and the other side publishes its change before it reads the announcement; so either
// the sleeper sees the change or the other side sees the sleeper and notifies (under the mutex,
// which the sleeper holds until it waits).
void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  auto woken = [&] { return stop_.load() || generation_.load() != seen; };
  for (;;) {
    if (!spinUntil(woken)) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, woken);
      sleepers_.fetch_sub(1);
    }
    if (stop_.load()) return;
    seen = generation_.load();
    runChunks(index);
    if (pending_.fetch_sub(1) == 1 && callerSleeps_.load()) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_all();
    }
  }
}

void ThreadPool::parallelFor(int64_t n, int64_t grain, const RangeFn& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int threads = size();
  if (tInsideLoop || threads == 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  // about 4 chunks per thread for balance, never below the grain
  run(n, std::max(grain, (n + 4 * threads - 1) / (4 * threads)), fn);
}

void ThreadPool::parallelForEach(int64_t n, const RangeFn& fn) {
  if (n <= 0) return;
  if (tInsideLoop || size() == 1 || n == 1) {
    fn(0, n, 0);
    return;
  }
  run(n, 1, fn);
}

void ThreadPool::run(int64_t n, int64_t chunk, const RangeFn& fn) {
  std::lock_guard<std::mutex> job(jobMutex_);
  // every worker has left the previous job (pending_ reached 0), so none reads these now
  fn_ = &fn;
  n_ = n;
  chunk_ = chunk;
  next_.store(0);
  pending_.store((int)workers_.size());
  generation_.fetch_add(1);
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  runChunks(0);
  auto finished = [&] { return pending_.load() == 0; };
  if (!spinUntil(finished)) {
    std::unique_lock<std::mutex> lock(mutex_);
    callerSleeps_.store(true);
    done_.wait(lock, finished);
    callerSleeps_.store(false);
  }
  fn_ = nullptr;
  std::exception_ptr error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    std::swap(error, error_);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace onestep
