// cusim's runtime: fibers for CUDA threads, block barriers and warp-synchronous calls, device
// memory with guard pages and a budget, streams, capture and graph replay (see cusim.h).
#include "cusim.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cusim {

thread_local ThreadCtx* tcur = nullptr;

struct Stream {
  bool capturing = false;
  bool invalidated = false;
  Graph* graph = nullptr;
};
struct Graph {
  std::vector<std::function<cudaError_t()>> ops;
};
struct GraphExec {
  std::vector<std::function<cudaError_t()>> ops;
};

namespace {

constexpr size_t kStackBytes = 256 * 1024;

// ---- context switching: a few instructions on x86-64, ucontext elsewhere -------------------
#if defined(__x86_64__) && !defined(CUSIM_UCONTEXT)
#define CUSIM_FAST_SWITCH 1
}  // namespace
}  // namespace cusim
// cusim_switch(save, to): saves the callee-saved registers and the FP control words on the
// current stack, stores its pointer in *save, and resumes the stack `to`.
extern "C" void cusim_switch(void** save, void* to);
asm(R"(
  .text
  .globl cusim_switch
  .hidden cusim_switch
  .type cusim_switch, @function
cusim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cusim_switch, .-cusim_switch
)");
namespace cusim {
namespace {
#endif

// ---- errors --------------------------------------------------------------------------------
thread_local cudaError_t gLast = cudaSuccess;
thread_local std::string gDetail;

cudaError_t fail(cudaError_t e, const std::string& detail) {
  gLast = e;
  gDetail = detail;
  return e;
}

// ---- fibers --------------------------------------------------------------------------------
enum State { kReady, kBarrier, kWarp, kDone };

struct Fiber {
#ifdef CUSIM_FAST_SWITCH
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  ThreadCtx ctx;
  State state = kDone;
  int kind = 0;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int src = 0;
  char* stack = nullptr;
};

struct Worker {
#ifdef CUSIM_FAST_SWITCH
  void* sched = nullptr;
#else
  ucontext_t sched;
#endif
  std::vector<Fiber> fibers;
  Fiber* cur = nullptr;
  const std::function<void()>* body = nullptr;
  bool failed = false;
  std::string error;
  bool reverse = false;  // warps let through from the highest (odd blocks) instead of the lowest
  int lastWarp = -1, streak = 0;  // the warp let through last, how many rounds in a row
  ~Worker() {
    for (Fiber& f : fibers)
      if (f.stack) munmap(f.stack - sysconf(_SC_PAGESIZE), kStackBytes + sysconf(_SC_PAGESIZE));
  }
};
thread_local std::unique_ptr<Worker> tw;

// From the running fiber back to the scheduler, and from the scheduler into fiber f.
void toScheduler(Worker* w, Fiber* f) {
#ifdef CUSIM_FAST_SWITCH
  cusim_switch(&f->sp, w->sched);
#else
  swapcontext(&f->uc, &w->sched);
#endif
}
void toFiber(Worker* w, Fiber* f) {
#ifdef CUSIM_FAST_SWITCH
  cusim_switch(&w->sched, f->sp);
#else
  swapcontext(&w->sched, &f->uc);
#endif
}

void fiberEntry() {
  Worker* w = tw.get();
  (*w->body)();
  w->cur->state = kDone;
#ifdef CUSIM_FAST_SWITCH
  toScheduler(w, w->cur);  // never resumed
  std::abort();
#endif
  // ucontext: returning resumes uc_link, the scheduler
}

// A fresh context for fiber f that starts in fiberEntry.
void startContext(Worker* w, Fiber* f) {
#ifdef CUSIM_FAST_SWITCH
  (void)w;
  uint64_t* top = reinterpret_cast<uint64_t*>(f->stack + kStackBytes);  // 16-byte aligned
  uint64_t* sp = top - 10;
  sp[9] = 0;                                                 // fiberEntry's return address: none
  sp[8] = reinterpret_cast<uint64_t>(&fiberEntry);           // where cusim_switch's ret goes
  for (int r = 2; r < 8; ++r) sp[r] = 0;                     // rbp rbx r12 r13 r14 r15
  sp[1] = 0x1f80;                                            // MXCSR: the default
  sp[0] = 0x037f;                                            // x87 control word: the default
  f->sp = sp;
#else
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = kStackBytes;
  f->uc.uc_link = &w->sched;
  makecontext(&f->uc, fiberEntry, 0);
#endif
}

void park(State s) {
  Worker* w = tw.get();
  if (!w || !w->cur) {
    std::fprintf(stderr, "cusim: a barrier or warp operation outside a kernel\n");
    std::abort();
  }
  Fiber* f = w->cur;
  f->state = s;
  toScheduler(w, f);
}

std::string str(const uint3& v) { return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")"; }

bool prepare(Worker& w, int n) {
  const long page = sysconf(_SC_PAGESIZE);
  if ((int)w.fibers.size() < n) w.fibers.resize(n);
  for (int t = 0; t < n; ++t) {
    Fiber& f = w.fibers[t];
    if (!f.stack) {
      void* m = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (m == MAP_FAILED) return false;
      mprotect(m, page, PROT_NONE);  // a stack overflow faults instead of corrupting a neighbour
      f.stack = static_cast<char*>(m) + page;
    }
  }
  return true;
}

// Releases the warp-synchronous calls that every lane of their mask has reached; false on a
// misuse (message in w.error).
// One warp per round, the lowest (the highest in odd blocks) that can go, so that it runs ahead of the
// others until it blocks; all that can go after a long streak of one warp (a warp polling for
// another's write through warp calls would otherwise never let it run).
bool releaseWarps(Worker& w, int n, bool& released) {
  const int warps = (n + 31) / 32;
  const bool everyWarp = w.streak > 100000;
  for (int i = 0; i < warps; ++i) {
    const int base = 32 * (w.reverse ? warps - 1 - i : i);
    const int lanes = n - base < 32 ? n - base : 32;
    for (int l = 0; l < lanes; ++l) {
      Fiber& f = w.fibers[base + l];
      if (f.state != kWarp) continue;
      const unsigned m = f.mask;
      if (!(m >> l & 1u)) {
        w.error = "lane " + std::to_string(l) + " of warp " + std::to_string(base / 32) + " made a warp-synchronous call with a mask that excludes it";
        return false;
      }
      bool all = true;
      for (int j = 0; j < 32; ++j) {
        if (!(m >> j & 1u)) continue;
        if (j >= lanes) {
          w.error = "a warp-synchronous call names lane " + std::to_string(j) + " of warp " + std::to_string(base / 32) + ", which the block does not have";
          return false;
        }
        const Fiber& g = w.fibers[base + j];
        if (g.state == kDone) {
          w.error = "lane " + std::to_string(j) + " of warp " + std::to_string(base / 32) +
                    " exited while the others made a warp-synchronous call that includes it";
          return false;
        }
        if (g.state != kWarp) {
          all = false;
          continue;
        }
        if (g.mask != m || g.kind != f.kind) {
          w.error = "lanes of warp " + std::to_string(base / 32) + " reached different warp-synchronous calls (divergence)";
          return false;
        }
      }
      if (!all) continue;
      uint64_t ballot = 0;
      for (int j = 0; j < 32; ++j)
        if (m >> j & 1u && w.fibers[base + j].value) ballot |= 1ull << j;
      for (int j = 0; j < 32; ++j) {
        if (!(m >> j & 1u)) continue;
        Fiber& g = w.fibers[base + j];
        if (g.kind == 1) {
          if (g.src < 0 || g.src >= 32 || !(m >> g.src & 1u)) {
            w.error = "lane " + std::to_string(j) + " of warp " + std::to_string(base / 32) + " shuffles from lane " + std::to_string(g.src) +
                      ", outside the mask";
            return false;
          }
          g.result = w.fibers[base + g.src].value;
        } else if (g.kind == 2) {
          g.result = ballot;
        }
        g.state = kReady;
      }
      released = true;
      if (everyWarp) continue;
      w.streak = base / 32 == w.lastWarp ? w.streak + 1 : 0;
      w.lastWarp = base / 32;
      return true;  // one warp at a time: it runs on until it blocks, ahead of the others
    }
  }
  if (everyWarp) w.streak = 0;
  return true;
}

// Runs one block to completion; false with w.error on a fault.
std::atomic<uint64_t> gBlockSerial{0};

bool runBlock(Worker& w, dim3 grid, dim3 block, uint3 bidx) {
  const int n = (int)(block.x * block.y * block.z);
  const uint64_t serial = ++gBlockSerial;
  w.reverse = (bidx.x + bidx.y + bidx.z) % 2 == 1;
  w.lastWarp = -1, w.streak = 0;
  for (int t = 0; t < n; ++t) {
    Fiber& f = w.fibers[t];
    f.ctx.tid = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    f.ctx.bid = bidx;
    f.ctx.bdim = block;
    f.ctx.gdim = grid;
    f.ctx.linear = t;
    f.ctx.serial = serial;
    f.state = kReady;
    startContext(&w, &f);
  }
  int done = 0;
  while (true) {
    for (int t = 0; t < n; ++t) {
      Fiber& f = w.fibers[t];
      if (f.state != kReady) continue;
      w.cur = &f;
      tcur = &f.ctx;
      toFiber(&w, &f);
      if (w.failed) {
        w.error = "thread " + str(f.ctx.tid) + ": " + w.error;
        return false;
      }
    }
    w.cur = nullptr;
    tcur = nullptr;
    done = 0;
    int atBarrier = 0, atWarp = 0;
    for (int t = 0; t < n; ++t) {
      const State s = w.fibers[t].state;
      done += s == kDone;
      atBarrier += s == kBarrier;
      atWarp += s == kWarp;
    }
    if (done == n) return true;
    bool released = false;
    if (atWarp && !releaseWarps(w, n, released)) return false;
    if (!released && atBarrier + done == n) {
      for (int t = 0; t < n; ++t)
        if (w.fibers[t].state == kBarrier) w.fibers[t].state = kReady;
      released = true;
    }
    if (!released) {
      w.error = "deadlock: " + std::to_string(atBarrier) + " threads wait at __syncthreads, " + std::to_string(atWarp) +
                " at warp-synchronous calls, " + std::to_string(done) + " exited";
      return false;
    }
  }
}

cudaError_t runGridUntimed(dim3 grid, dim3 block, const std::function<void()>& body);

// CUSIM_TRACE=1: every kernel's grid, block and time on stderr.
cudaError_t runGrid(dim3 grid, dim3 block, const std::function<void()>& body) {
  static const bool trace = std::getenv("CUSIM_TRACE") != nullptr;
  if (!trace) return runGridUntimed(grid, block, body);
  const auto t0 = std::chrono::steady_clock::now();
  const cudaError_t e = runGridUntimed(grid, block, body);
  std::fprintf(stderr, "cusim: grid %s block %s: %.3f ms\n", str(uint3{grid.x, grid.y, grid.z}).c_str(), str(uint3{block.x, block.y, block.z}).c_str(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return e;
}

// Helper OS threads that run blocks beside the launching thread (CUSIM_THREADS, default: the
// cores, at most 8). Blocks are independent in CUDA; each OS thread has its own fibers and its
// own __shared__ variables. The pool lives for the process (its threads are detached).
class Pool {
 public:
  explicit Pool(int helpers) {
    for (int i = 0; i < helpers; ++i) std::thread([this] { loop(); }).detach();
    helpers_ = helpers;
  }
  int helpers() const { return helpers_; }
  // Runs f on every helper and on the caller; returns when all are done. Launches from several
  // OS threads (graphs run on libuv's workers) take turns.
  void runAll(const std::function<void()>& f) {
    std::lock_guard<std::mutex> turn(launch_);
    {
      std::lock_guard<std::mutex> lock(m_);
      task_ = &f;
      running_ = helpers_;
      ++generation_;
    }
    wake_.notify_all();
    f();
    std::unique_lock<std::mutex> lock(m_);
    finished_.wait(lock, [this] { return running_ == 0; });
    task_ = nullptr;
  }

 private:
  void loop() {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      const std::function<void()>* t = task_;
      lock.unlock();
      (*t)();
      lock.lock();
      if (--running_ == 0) finished_.notify_all();
    }
  }
  std::mutex launch_, m_;
  std::condition_variable wake_, finished_;
  const std::function<void()>* task_ = nullptr;
  uint64_t generation_ = 0;
  int running_ = 0;
  int helpers_ = 0;
};

Pool& pool() {
  static Pool* p = [] {
    const char* e = std::getenv("CUSIM_THREADS");
    int n = e ? std::atoi(e) : (int)std::thread::hardware_concurrency();
    if (n < 1) n = 1;
    if (n > 8) n = 8;
    return new Pool(n - 1);
  }();
  return *p;
}

Worker& worker() {
  if (!tw) tw.reset(new Worker());
  return *tw;
}

cudaError_t runGridUntimed(dim3 grid, dim3 block, const std::function<void()>& body) {
  if (worker().body) return fail(cudaErrorLaunchFailure, "a kernel launched from inside a kernel");
  const int n = (int)(block.x * block.y * block.z);
  const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errorMutex;
  std::string error;
  const std::function<void()> work = [&] {
    Worker& w = worker();
    bool ready = false;
    try {
      ready = prepare(w, n);
    } catch (const std::exception&) {
    }
    if (!ready) {
      std::lock_guard<std::mutex> lock(errorMutex);
      if (!failed.exchange(true)) error = "no memory for the thread stacks";
      return;
    }
    w.body = &body;
    w.failed = false;
    for (uint64_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < blocks;) {
      const uint3 b{(unsigned)(i % grid.x), (unsigned)(i / grid.x % grid.y), (unsigned)(i / ((uint64_t)grid.x * grid.y))};
      if (!runBlock(w, grid, block, b)) {
        std::lock_guard<std::mutex> lock(errorMutex);
        if (!failed.exchange(true)) error = "kernel fault in block " + str(b) + ": " + w.error;
        break;
      }
    }
    w.body = nullptr;
    w.cur = nullptr;
    tcur = nullptr;
  };
  if (blocks > 1 && pool().helpers() > 0)
    pool().runAll(work);
  else
    work();
  if (failed) return fail(cudaErrorLaunchFailure, error);
  return cudaSuccess;
}

// ---- device memory -------------------------------------------------------------------------
struct Alloc {
  char* map;
  size_t mapLen;
  size_t size;
};
std::mutex gMemMutex;
std::map<uintptr_t, Alloc> gAllocs;  // by the pointer handed out
size_t gUsed = 0;

size_t budget() {
  static const size_t b = [] {
    const char* e = std::getenv("ONESTEP_CUDA_SIM_MEMORY");
    const long long v = e ? std::atoll(e) : 0;
    return v > 0 ? (size_t)v : (size_t)8 << 30;
  }();
  return b;
}

// Whether [p, p + bytes) lies inside one allocation.
bool isDevice(const void* p, size_t bytes) {
  std::lock_guard<std::mutex> lock(gMemMutex);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = gAllocs.upper_bound(a);
  if (it == gAllocs.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second.size;
}

// The stream this OS thread is capturing on (ThreadLocal capture mode: other threads' calls are
// not affected; this thread's synchronous copies and syncs invalidate its capture).
thread_local Stream* tCapturing = nullptr;

cudaError_t checkCopy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dd = isDevice(dst, bytes), sd = isDevice(src, bytes);
  const bool ok = kind == cudaMemcpyHostToDevice   ? dd && !sd
                  : kind == cudaMemcpyDeviceToHost ? sd && !dd
                  : kind == cudaMemcpyDeviceToDevice ? dd && sd
                  : kind == cudaMemcpyHostToHost     ? !dd && !sd
                                                     : true;
  if (!ok) return fail(cudaErrorInvalidValue, "cudaMemcpy: a pointer is not where its kind says (host/device), or the range leaves its allocation");
  return cudaSuccess;
}

}  // namespace

// Work on stream s: recorded into its graph while it is being captured, else done now (cusim's
// streams are synchronous).
cudaError_t enqueue(cudaStream_t s, std::function<cudaError_t()> op) {
  if (s && s->capturing) {
    s->graph->ops.push_back(std::move(op));
    return cudaSuccess;
  }
  return op();
}

void syncBlock() { park(kBarrier); }

uint64_t warpOp(int kind, unsigned mask, uint64_t value, int src) {
  Fiber* f = tw ? tw->cur : nullptr;
  if (!f) {
    std::fprintf(stderr, "cusim: a warp operation outside a kernel\n");
    std::abort();
  }
  f->kind = kind;
  f->mask = mask;
  f->value = value;
  f->src = src;
  park(kWarp);
  return f->result;
}

void kernelError(const char* what) {
  Worker* w = tw.get();
  if (!w || !w->cur) {
    std::fprintf(stderr, "cusim: %s (outside a kernel)\n", what);
    std::abort();
  }
  w->failed = true;
  w->error = what;
  Fiber* f = w->cur;
  f->state = kDone;
  toScheduler(w, f);
  std::abort();  // never resumed
}

bool deviceRange(const void* p, size_t bytes) { return isDevice(p, bytes); }

void submit(dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> body, const char*) {
  const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535 || smem > 48 * 1024) {
    fail(cudaErrorInvalidConfiguration, "invalid launch configuration: grid " + str(uint3{grid.x, grid.y, grid.z}) + ", block " +
                                            str(uint3{block.x, block.y, block.z}) + ", " + std::to_string(smem) + " bytes of shared memory");
    return;
  }
  enqueue(s, [grid, block, body]() { return runGrid(grid, block, body); });
}

}  // namespace cusim

using namespace cusim;

cudaError_t cudaGetLastError() {
  const cudaError_t e = gLast;
  gLast = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return gLast; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaSuccess && !gDetail.empty()) return gDetail.c_str();
  return e == cudaSuccess ? "no error" : "cusim error";
}

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice, "cusim has one device"); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return fail(cudaErrorInvalidDevice, "cusim has one device");
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "cusim (the CUDA kernels run on the CPU)");
  p->totalGlobalMem = budget();
  p->sharedMemPerBlock = 48 * 1024;
  // CUSIM_CC=major.minor (default 9.0): the compute capability reported, so that tests take the
  // paths of older GPUs (e.g. 7.5: no bf16 tensor cores, no mma.sync m16n8k16)
  p->major = 9;
  p->minor = 0;
  if (const char* cc = std::getenv("CUSIM_CC")) {
    int major = 0, minor = 0;
    char tail = 0;
    if (std::sscanf(cc, "%d.%d%c", &major, &minor, &tail) != 2 || major < 5 || major > 12 || minor < 0 || minor > 9)
      return fail(cudaErrorInvalidValue, std::string("CUSIM_CC must be major.minor (e.g. 7.5), got '") + cc + "'");
    p->major = major;
    p->minor = minor;
  }
  p->multiProcessorCount = (int)std::thread::hardware_concurrency();
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int d) {
  cudaDeviceProp p;
  const cudaError_t e = cudaGetDeviceProperties(&p, d);
  if (e != cudaSuccess) return e;
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue, "cusim: an attribute it does not know");
}

cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  std::lock_guard<std::mutex> lock(gMemMutex);
  *totalBytes = budget();
  *freeBytes = budget() - gUsed;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  const size_t rounded = (bytes + 255) / 256 * 256;  // cudaMalloc's alignment
  const size_t body = (rounded + page - 1) / page * page;
  {
    std::lock_guard<std::mutex> lock(gMemMutex);  // reserve the bytes before mapping them
    if (bytes > budget() - gUsed)
      return fail(cudaErrorMemoryAllocation, "out of memory: " + std::to_string(bytes) + " bytes requested, " + std::to_string(budget() - gUsed) + " free");
    gUsed += bytes;
  }
  void* m = mmap(nullptr, body + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    std::lock_guard<std::mutex> lock(gMemMutex);
    gUsed -= bytes;
    return fail(cudaErrorMemoryAllocation, "out of host memory for a cusim allocation");
  }
  char* base = static_cast<char*>(m);
  mprotect(base + body, page, PROT_NONE);  // an overrun past the end faults
  char* user = base + body - rounded;
  std::memset(user, 0xff, rounded);  // NaN as float: reading what was never written shows
  std::lock_guard<std::mutex> lock(gMemMutex);
  gAllocs[reinterpret_cast<uintptr_t>(user)] = Alloc{base, body + page, bytes};
  *p = user;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(gMemMutex);
  auto it = gAllocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == gAllocs.end()) return fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  munmap(it->second.map, it->second.mapLen);
  gUsed -= it->second.size;
  gAllocs.erase(it);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (tCapturing) {
    tCapturing->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported, "a synchronous cudaMemcpy while a stream is being captured");
  }
  if (bytes == 0) return cudaSuccess;
  const cudaError_t e = checkCopy(dst, src, bytes, kind);
  if (e != cudaSuccess) return e;
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (bytes == 0) return cudaSuccess;
  const cudaError_t e = checkCopy(dst, src, bytes, kind);
  if (e != cudaSuccess) return e;
  return enqueue(s, [dst, src, bytes]() {
    std::memcpy(dst, src, bytes);
    return cudaSuccess;
  });
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  if (!isDevice(dst, bytes)) return fail(cudaErrorInvalidValue, "cudaMemset outside an allocation");
  return enqueue(s, [dst, value, bytes]() {
    std::memset(dst, value, bytes);
    return cudaSuccess;
  });
}

cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = new Stream();
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s && s->capturing) return fail(cudaErrorInvalidValue, "destroying a stream that is being captured");
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->capturing) return fail(cudaErrorStreamCaptureUnsupported, "synchronizing a stream that is being captured");
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (!tCapturing) return cudaSuccess;
  tCapturing->invalidated = true;
  return fail(cudaErrorStreamCaptureUnsupported, "cudaDeviceSynchronize while a stream is being captured");
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  if (!s) return fail(cudaErrorStreamCaptureUnsupported, "the legacy default stream cannot be captured");
  if (s->capturing || tCapturing) return fail(cudaErrorInvalidValue, "a capture is already in progress on this stream or thread");
  s->capturing = true;
  s->invalidated = false;
  s->graph = new Graph();
  tCapturing = s;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  *g = nullptr;
  if (!s || !s->capturing) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture on a stream that is not capturing");
  s->capturing = false;
  if (tCapturing == s) tCapturing = nullptr;
  Graph* graph = s->graph;
  s->graph = nullptr;
  if (s->invalidated) {
    delete graph;
    return fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by an operation it cannot hold");
  }
  *g = graph;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (!g) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate of a null graph");
  *e = new GraphExec{g->ops};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (!e) return fail(cudaErrorInvalidValue, "cudaGraphLaunch of a null graph");
  if (s && s->capturing) return fail(cudaErrorStreamCaptureUnsupported, "cusim does not capture graph launches");
  for (auto& op : e->ops) {
    const cudaError_t r = op();
    if (r != cudaSuccess) return r;
  }
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}
