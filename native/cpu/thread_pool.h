// A fixed pool of worker threads for data-parallel loops. The calling thread takes part, so a
// loop runs on size() threads in all. Nested loops (a loop body that loops again) run serially.
//
// Between loops a worker spins for a while (ONESTEP_SPIN_US, default 200 microseconds) before it
// sleeps, and so does the caller waiting for the workers' last chunks: a graph runs its nodes'
// loops back to back, and a sleeping thread takes tens of microseconds to wake, once per loop.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace onestep {

class ThreadPool {
 public:
  // fn(begin, end, thread) over [0, n) in chunks of at least `grain`.
  using RangeFn = std::function<void(int64_t begin, int64_t end, int thread)>;

  explicit ThreadPool(int threads, int spinMicros = 200);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // The process-wide pool: ONESTEP_NUM_THREADS, else the hardware thread count.
  static ThreadPool& global();

  int size() const { return (int)workers_.size() + 1; }
  void parallelFor(int64_t n, int64_t grain, const RangeFn& fn);
  // fn(i, i + 1, thread) for each i in [0, n), taken one at a time: for a few large items of
  // similar cost (GEMM blocks), where parallelFor's chunks of several would leave a thread idle
  // at the end.
  void parallelForEach(int64_t n, const RangeFn& fn);

 private:
  void run(int64_t n, int64_t chunk, const RangeFn& fn);
  void workerLoop(int index);
  void runChunks(int thread);
  // spins up to spinMicros_ while pred() is false; true when it became true
  template <typename Pred>
  bool spinUntil(Pred pred) const;

  std::vector<std::thread> workers_;
  const int spinMicros_;
  std::mutex jobMutex_;  // one loop at a time
  std::mutex mutex_;     // sleeping and waking, error_
  std::condition_variable wake_;
  std::condition_variable done_;
  std::atomic<uint64_t> generation_{0};  // a new job (release: the fields below are set)
  std::atomic<int> sleepers_{0};         // workers asleep (or about to be) on wake_
  std::atomic<bool> callerSleeps_{false};
  std::atomic<bool> stop_{false};
  // the current job
  const RangeFn* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 1;
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};  // workers still in the job
  std::exception_ptr error_;
};

}  // namespace onestep
