// cusim: the CUDA kernels of kernels/ compiled by the host C++ compiler and run on the CPU, with
// CUDA's execution model kept where kernels depend on it, so their indexing, tiling and
// reductions are tested without a GPU (test/backend/cuda_sim.test.js, docs/CUDA.md).
//
//  - every CUDA thread is a fiber; a block's fibers run on one OS thread and switch only at
//    __syncthreads and warp-synchronous calls (shuffles, votes, __syncwarp), so a barrier that
//    not every thread reaches, a shuffle whose lanes diverged or exited, is reported as an error;
//    warps are let through warp-synchronous calls one at a time, lowest first (highest first in
//    odd blocks), so a warp runs ahead of the others until it reaches a block barrier: shared
//    memory a warp overwrites before a barrier that should have kept it waiting is overwritten
//    before the others read it;
//  - __shared__ variables are per block (thread_local statics: one block at a time per OS thread);
//  - WMMA fragments are whole tiles, but each lane loads, computes and stores only what its own
//    elements need (result element e belongs to lane e % 32), so a lane that skips a *_sync
//    call leaves holes in the result; load/store check the alignment and ldm rules of the API;
//  - fp16 is _Float16 (round to nearest even), bf16 rounds to nearest even (native/core/half.h);
//  - device memory is host memory with a guard page after each allocation (an overrun faults),
//    poisoned with NaN bytes, within a budget (ONESTEP_CUDA_SIM_MEMORY, bytes) so out-of-memory
//    paths can be tested; streams run synchronously; capture records launches and copies and a
//    graph launch replays them; synchronous copies during a capture are refused as CUDA does.
// Kernels launch through ONESTEP_LAUNCH (kernels/common.cuh): <<<>>> for nvcc, cusim::launch here.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../../native/core/half.h"  // the addon's bf16 rounding (round to nearest even, NaN kept)

#define ONESTEP_CUDA_SIM 1
#define CUDART_VERSION 13000

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

// ---- runtime types -------------------------------------------------------------------------
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct uint3 {
  unsigned x, y, z;
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
};
typedef cudaError_t cudaError;

enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76, cudaDevAttrMultiProcessorCount = 16 };
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4 };
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

namespace cusim {
struct Stream;
struct Graph;
struct GraphExec;
}  // namespace cusim
typedef cusim::Stream* cudaStream_t;
typedef cusim::Graph* cudaGraph_t;
typedef cusim::GraphExec* cudaGraphExec_t;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int major, minor;
  int multiProcessorCount;
  int warpSize;
  int maxThreadsPerBlock;
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int d);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);

// ---- the executing thread ------------------------------------------------------------------
namespace cusim {

struct ThreadCtx {
  uint3 tid;
  uint3 bid;
  dim3 bdim;
  dim3 gdim;
  int linear;  // threadIdx flattened (x fastest)
  uint64_t serial;  // the block's run, unique in the process (state kept per block starts afresh)
};
extern thread_local ThreadCtx* tcur;

// Block-wide barrier; warp-synchronous operations: every lane in `mask` must make the same call
// with the same mask. kind: 0 sync, 1 shuffle (value in, value of lane `src` out), 2 ballot,
// 3 a tensor-core call's exchange (mma.cuh: matched only with the same call).
void syncBlock();
uint64_t warpOp(int kind, unsigned mask, uint64_t value, int src);
// A failure found inside a kernel (bad WMMA pointer...): the launch fails with this message.
[[noreturn]] void kernelError(const char* what);

void submit(dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> body, const char* name);
// Whether [p, p + bytes) lies inside one device allocation (for the vendor-library stand-ins'
// argument checks: what a real library would read or write out of bounds).
bool deviceRange(const void* p, size_t bytes);

template <class... P>
struct Launcher {
  void (*kernel)(P...);
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    auto k = kernel;
    auto args = std::tuple<std::decay_t<P>...>(static_cast<std::decay_t<P>>(std::forward<A>(a))...);
    submit(grid, block, smem, stream, [k, args]() { std::apply(k, args); }, nullptr);
  }
};

template <class... P>
Launcher<P...> launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = nullptr) {
  return Launcher<P...>{kernel, grid, block, smem, stream};
}

template <class T>
inline T shuffle(unsigned mask, T v, int src) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
  uint64_t in = 0, out;
  std::memcpy(&in, &v, sizeof(T));
  out = warpOp(1, mask, in, src);
  T r;
  std::memcpy(&r, &out, sizeof(T));
  return r;
}

inline int laneId() { return tcur->linear & 31; }

}  // namespace cusim

#define threadIdx (::cusim::tcur->tid)
#define blockIdx (::cusim::tcur->bid)
#define blockDim (::cusim::tcur->bdim)
#define gridDim (::cusim::tcur->gdim)
constexpr int warpSize = 32;

inline void __syncthreads() {
  asm volatile("" ::: "memory");
  ::cusim::syncBlock();
  asm volatile("" ::: "memory");
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  asm volatile("" ::: "memory");
  ::cusim::warpOp(0, mask, 0, 0);
  asm volatile("" ::: "memory");
}
inline void __threadfence() { asm volatile("" ::: "memory"); }
inline void __threadfence_block() { asm volatile("" ::: "memory"); }

template <class T>
inline T __shfl_sync(unsigned mask, T v, int srcLane, int width = 32) {
  const int lane = ::cusim::laneId();
  return ::cusim::shuffle(mask, v, (lane / width) * width + (srcLane % width));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int laneMask, int width = 32) {
  const int lane = ::cusim::laneId(), src = lane ^ laneMask;
  return ::cusim::shuffle(mask, v, (src / width == lane / width) ? src : lane);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::cusim::laneId();
  return ::cusim::shuffle(mask, v, (lane % width) + (int)delta < width ? lane + (int)delta : lane);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = ::cusim::laneId();
  return ::cusim::shuffle(mask, v, (lane % width) >= (int)delta ? lane - (int)delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return (unsigned)::cusim::warpOp(2, mask, pred ? 1 : 0, 0); }
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }
inline unsigned __activemask() { return 0xffffffffu; }

template <class T>
inline T atomicAdd(T* p, T v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) {
  float old, next;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do {
    next = old + v;
  } while (!__atomic_compare_exchange(p, &old, &next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}
template <class T>
inline T atomicMax(T* p, T v) {
  T old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// CUDA's device math that the C library lacks
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

// ---- fp16 and bf16 -------------------------------------------------------------------------
struct __half {
  _Float16 v;
  __half() = default;
  __half(float f) : v(static_cast<_Float16>(f)) {}
  operator float() const { return static_cast<float>(v); }
};
typedef __half half;
struct __half2 {
  __half x, y;
};
typedef __half2 half2;
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return static_cast<float>(h.v); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__half(a), __half(b)}; }
inline float __low2float(__half2 h) { return h.x; }
inline float __high2float(__half2 h) { return h.y; }

struct __nv_bfloat16 {
  uint16_t bits;
  operator float() const { return onestep::bf16ToFloat(bits); }
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{onestep::floatToBf16(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return h; }

// ---- WMMA ----------------------------------------------------------------------------------
namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = rows * cols;
  T x[rows * cols];  // row-major (r, c), whatever the memory layout
};

namespace detail {
inline void checkPtr(const void* p, size_t elemSize, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) ::cusim::kernelError((std::string("wmma::") + what + ": the pointer is not 32-byte aligned").c_str());
  if ((ldm * elemSize) % 16 != 0) ::cusim::kernelError((std::string("wmma::") + what + ": ldm is not a multiple of 16 bytes").c_str());
}
// Element (i, j) of an M x N result belongs to lane (i * N + j) % 32.
enum Need { kRowsOfA, kColsOfB, kOwned };
// Loads what this lane's results need: the rows of A / columns of B they use, or its own
// elements of an accumulator (the rest of the fragment is never read by this lane).
template <int M, int N, class F, class T>
inline void load(F& f, const T* p, unsigned ldm, bool colMajor, Need need) {
  checkPtr(p, sizeof(T), ldm, "load_matrix_sync");
  const int lane = ::cusim::laneId();
  uint64_t rows = 0, cols = 0;
  for (int e = lane; e < M * N; e += 32) {
    rows |= 1ull << (e / N);
    cols |= 1ull << (e % N);
  }
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c) {
      const bool want = need == kRowsOfA ? (rows >> r & 1) : need == kColsOfB ? (cols >> c & 1) : ((r * N + c) & 31) == lane;
      if (want) f.x[r * F::cols + c] = colMajor ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c];
    }
}
}  // namespace detail

template <int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<matrix_a, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  detail::load<M, N>(f, p, ldm, std::is_same<Layout, col_major>::value, detail::kRowsOfA);
}
template <int M, int N, int K, class T, class Layout>
inline void load_matrix_sync(fragment<matrix_b, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  detail::load<M, N>(f, p, ldm, std::is_same<Layout, col_major>::value, detail::kColsOfB);
}
template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  detail::load<M, N>(f, p, ldm, layout == mem_col_major, detail::kOwned);
}
template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  detail::checkPtr(p, sizeof(T), ldm, "store_matrix_sync");
  for (int e = ::cusim::laneId(); e < M * N; e += 32) {
    const int r = e / N, c = e % N;
    (layout == mem_col_major ? p[(size_t)c * ldm + r] : p[(size_t)r * ldm + c]) = f.x[e];
  }
}
template <class Use, int M, int N, int K, class T, class Layout, class V>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const V& v) {
  for (int e = 0; e < fragment<Use, M, N, K, T, Layout>::num_elements; ++e) f.x[e] = v;
}
template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  for (int e = ::cusim::laneId(); e < M * N; e += 32) {  // this lane's elements only
    const int i = e / N, j = e % N;
    float s = (float)c.x[e];
    for (int k = 0; k < K; ++k) s += (float)a.x[i * K + k] * (float)b.x[k * N + j];
    d.x[e] = s;
  }
}

}  // namespace wmma
}  // namespace nvcuda
