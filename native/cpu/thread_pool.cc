#include "thread_pool.h"

#include <algorithm>
#include <cstdlib>

namespace onestep {

namespace {
thread_local bool tInsideLoop = false;

int defaultThreads() {
  if (const char* e = std::getenv("ONESTEP_NUM_THREADS")) {
    const int n = std::atoi(e);
    if (n >= 1 && n <= 1024) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? (int)hc : 1;
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(0, threads - 1);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { workerLoop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  // Never destroyed: worker threads must not be joined during static destruction at exit.
  static ThreadPool* pool = new ThreadPool(defaultThreads());
  return *pool;
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

void ThreadPool::workerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    runChunks(index);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) done_.notify_all();
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
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_.store(0);
    pending_ = (int)workers_.size();
    ++generation_;
  }
  wake_.notify_all();
  runChunks(0);
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    fn_ = nullptr;
    std::swap(error, error_);
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace onestep
