// cusim's own checks (test/kernels/sim/cusim.test.js builds this with the host compiler against
// kernels/sim and runs one case per invocation): the semantics the kernels rely on, and the
// misuses the simulator promises to report. Prints one line "ok ..." or "error: <message>".
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common.cuh"
#include "mma.cuh"

using namespace nvcuda;

namespace {

__global__ void shuffleKernel(int* out) {
  const int lane = threadIdx.x % 32, w = threadIdx.x / 32;
  int* o = out + w * 32 * 5 + lane * 5;
  o[0] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
  o[1] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
  o[2] = __shfl_up_sync(0xffffffffu, lane * 10, 2);
  o[3] = __shfl_sync(0xffffffffu, lane * 10, 7);
  o[4] = (int)__ballot_sync(0xffffffffu, lane % 3 == 0);
}

__global__ void barrierKernel(int* out) {
  __shared__ int s[256];
  s[threadIdx.x] = (int)threadIdx.x * 2 + (int)blockIdx.x;
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

// half of each warp waits at the block barrier, the other half at a shuffle that needs them
__global__ void divergentBarrierKernel(int* out) {
  if (threadIdx.x % 32 < 16)
    __syncthreads();
  else
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

__global__ void exitedLaneKernel(float* out) {
  if (threadIdx.x == 3) return;
  float v = (float)threadIdx.x;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

__global__ void wmmaKernel(const half* a, const half* b, float* c, int offset, bool skipLane) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + offset, 16);
  wmma::load_matrix_sync(fb, b, 16);
  wmma::mma_sync(acc, fa, fb, acc);
  if (skipLane && threadIdx.x == 5) return;
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

__global__ void writeKernel(float* p, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) p[i] += 1.0f;
}

int fails(const char* what, cudaError_t e) {
  std::printf("error: %s: %s: %s\n", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return 0;
}

template <class T>
T* deviceArray(size_t n) {
  void* p = nullptr;
  if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) {
    std::printf("error: cudaMalloc: %s\n", cudaGetErrorString(cudaGetLastError()));
    std::exit(0);
  }
  return static_cast<T*>(p);
}

int shuffles() {
  int* d = deviceArray<int>(64 * 5);
  ONESTEP_LAUNCH(shuffleKernel, 1, 64)(d);
  if (const cudaError_t e = cudaGetLastError()) return fails("shuffle", e);
  std::vector<int> h(64 * 5);
  cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
  unsigned ballot = 0;
  for (int l = 0; l < 32; ++l)
    if (l % 3 == 0) ballot |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    const int l = t % 32;
    const int* o = &h[t * 5];
    const int want[5] = {(l ^ 5) * 10, (l + 3 < 32 ? l + 3 : l) * 10, (l >= 2 ? l - 2 : l) * 10, 70, (int)ballot};
    for (int k = 0; k < 5; ++k)
      if (o[k] != want[k]) {
        std::printf("error: thread %d op %d: %d, expected %d\n", t, k, o[k], want[k]);
        return 0;
      }
  }
  std::printf("ok shuffles\n");
  return 0;
}

int barriers() {
  int* d = deviceArray<int>(3 * 256);
  ONESTEP_LAUNCH(barrierKernel, 3, 256)(d);
  if (const cudaError_t e = cudaGetLastError()) return fails("barrier", e);
  std::vector<int> h(3 * 256);
  cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
  for (int b = 0; b < 3; ++b)
    for (int t = 0; t < 256; ++t)
      if (h[b * 256 + t] != ((t + 1) % 256) * 2 + b) {
        std::printf("error: block %d thread %d read %d\n", b, t, h[b * 256 + t]);
        return 0;
      }
  std::printf("ok barriers\n");
  return 0;
}

int launchOnly(const char* name, void (*kernel)(int*), int threads) {
  int* d = deviceArray<int>(threads);
  ONESTEP_LAUNCH(kernel, 1, threads)(d);
  if (const cudaError_t e = cudaGetLastError()) return fails(name, e);
  std::printf("ok %s\n", name);
  return 0;
}

int exitedLane() {
  float* d = deviceArray<float>(32);
  ONESTEP_LAUNCH(exitedLaneKernel, 1, 32)(d);
  if (const cudaError_t e = cudaGetLastError()) return fails("exited lane", e);
  std::printf("ok exited lane\n");
  return 0;
}

// A, B random-ish in fp16; C = A * B with B column-major; compared with a float reference.
int wmmaCase(int offset, bool skipLane) {
  half* a = deviceArray<half>(16 * 16 + 64);
  half* b = deviceArray<half>(16 * 16);
  float* c = deviceArray<float>(16 * 16);
  std::vector<half> ha(16 * 16 + 64), hb(16 * 16);
  for (size_t i = 0; i < ha.size(); ++i) ha[i] = __float2half((float)((i * 37) % 11) / 8.0f - 0.6f);
  for (size_t i = 0; i < hb.size(); ++i) hb[i] = __float2half((float)((i * 53) % 13) / 8.0f - 0.7f);
  cudaMemcpy(a, ha.data(), ha.size() * sizeof(half), cudaMemcpyHostToDevice);
  cudaMemcpy(b, hb.data(), hb.size() * sizeof(half), cudaMemcpyHostToDevice);
  ONESTEP_LAUNCH(wmmaKernel, 1, 32)(a, b, c, offset, skipLane);
  if (const cudaError_t e = cudaGetLastError()) return fails("wmma", e);
  std::vector<float> hc(16 * 16);
  cudaMemcpy(hc.data(), c, hc.size() * sizeof(float), cudaMemcpyDeviceToHost);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += __half2float(ha[offset + i * 16 + k]) * __half2float(hb[j * 16 + k]);
      if (!(std::abs(hc[i * 16 + j] - s) <= 1e-4f)) {
        std::printf("error: C[%d][%d] = %g, expected %g\n", i, j, hc[i * 16 + j], s);
        return 0;
      }
    }
  std::printf("ok wmma\n");
  return 0;
}

// A 16x16 (row-major) times B 16x16 (k x n, row-major in global memory) through cp.async into
// shared memory, ldmatrix (A plain; B transposed, which gives mma's "col" fragments) and two
// m16n8k16 tiles (n 0-7 and 8-15), D stored by its fragment layout; T: __half or __nv_bfloat16
template <class T>
__global__ void mmaKernel(const T* a, const T* b, float* d) {
  __shared__ __align__(16) T As[16 * 16];
  __shared__ __align__(16) T Bs[16 * 16];
  const int l = threadIdx.x, g = l / 4, t = l % 4;
  // 2 x 256 values of 2 bytes = 64 chunks of 16 bytes: two per lane
  for (int c = l; c < 64; c += 32) {
    if (c < 32) onestep_cuda::cpAsync16(As + c * 8, a + c * 8);
    else onestep_cuda::cpAsync16(Bs + (c - 32) * 8, b + (c - 32) * 8);
  }
  onestep_cuda::cpAsyncCommit();
  onestep_cuda::cpAsyncWait<0>();
  __syncwarp();
  // A's four 8x8 matrices in mma's register order: rows 0-7 / 8-15 of k 0-7, then of k 8-15
  const int j = l / 8, r = l % 8;
  uint32_t fa[4], fb[4];
  onestep_cuda::ldmatrixX4(fa, As + ((j % 2) * 8 + r) * 16 + (j / 2) * 8);
  // B [k][n]: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15), transposed
  onestep_cuda::ldmatrixX4Trans(fb, Bs + ((j % 2) * 8 + r) * 16 + (j / 2) * 8);
  for (int half = 0; half < 2; ++half) {
    const float c0[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float out[4];
    onestep_cuda::mma16816<T>(out, fa, fb + 2 * half, c0);
    for (int i = 0; i < 4; ++i) d[(g + 8 * (i / 2)) * 16 + half * 8 + 2 * t + i % 2] = out[i];
  }
}

template <class T>
int mmaCaseOf(const char* name) {
  T* a = deviceArray<T>(16 * 16);
  T* b = deviceArray<T>(16 * 16);
  float* d = deviceArray<float>(16 * 16);
  std::vector<T> ha(256), hb(256);
  std::vector<float> fa(256), fb(256);
  for (int i = 0; i < 256; ++i) {
    ha[i] = onestep_cuda::toOperand<T>((float)((i * 37) % 23) / 8.0f - 1.3f);
    hb[i] = onestep_cuda::toOperand<T>((float)((i * 53) % 19) / 8.0f - 1.1f);
    fa[i] = onestep_cuda::toFloat(ha[i]);
    fb[i] = onestep_cuda::toFloat(hb[i]);
  }
  cudaMemcpy(a, ha.data(), 256 * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(b, hb.data(), 256 * sizeof(T), cudaMemcpyHostToDevice);
  ONESTEP_LAUNCH(mmaKernel<T>, 1, 32)(a, b, d);
  if (const cudaError_t e = cudaGetLastError()) return fails(name, e);
  std::vector<float> hd(256);
  cudaMemcpy(hd.data(), d, 256 * sizeof(float), cudaMemcpyDeviceToHost);
  for (int i = 0; i < 16; ++i)
    for (int n = 0; n < 16; ++n) {
      float s = 0.0f;
      for (int k = 0; k < 16; ++k) s += fa[i * 16 + k] * fb[k * 16 + n];
      if (!(std::abs(hd[i * 16 + n] - s) <= 1e-4f)) {
        std::printf("error: %s D[%d][%d] = %g, expected %g\n", name, i, n, hd[i * 16 + n], s);
        return 0;
      }
    }
  return -1;
}

int mmaCase() {
  for (int rc : {mmaCaseOf<__half>("mma f16"), mmaCaseOf<__nv_bfloat16>("mma bf16")})
    if (rc >= 0) return rc;
  std::printf("ok mma\n");
  return 0;
}

// cp.async at its worst and warps one ahead of the other (kernels/mma.cuh, cusim.h): lane 0 of each
// of two warps reads its slot right after issuing the copy (NaN: not landed), after the wait (the
// bytes); warp 0 writes a flag after three warp-synchronous calls, with no block barrier, and warp 1
// reads it after one: warp 0 has run ahead to the barrier, so warp 1 sees it set (in lockstep, not).
__global__ void asyncOrderKernel(const float* src, float* out) {
  __shared__ __align__(16) float slot[2][4];
  __shared__ int flag;
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  if (threadIdx.x == 0) flag = 0;
  __syncthreads();
  if (l == 0) {
    onestep_cuda::cpAsync16(slot[w], src + 4 * w);
    onestep_cuda::cpAsyncCommit();
    out[4 * w] = slot[w][0];
    onestep_cuda::cpAsyncWait<0>();
    out[4 * w + 1] = slot[w][0];
  }
  __syncwarp();
  if (w == 0) {
    __syncwarp();
    __syncwarp();
    if (l == 0) flag = 1;
  } else if (l == 0) {
    out[6] = (float)flag;  // in lockstep, before warp 0's two more warp calls: 0
  }
  __syncthreads();
}

int asyncOrder() {
  float* src = deviceArray<float>(8);
  float* out = deviceArray<float>(8);
  const float h[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  cudaMemcpy(src, h, sizeof(h), cudaMemcpyHostToDevice);
  ONESTEP_LAUNCH(asyncOrderKernel, 1, 64)(src, out);
  if (const cudaError_t e = cudaGetLastError()) return fails("async order", e);
  float r[8];
  cudaMemcpy(r, out, sizeof(r), cudaMemcpyDeviceToHost);
  for (int w = 0; w < 2; ++w) {
    if (!std::isnan(r[4 * w])) return std::printf("error: warp %d read %g from a cp.async slot before waiting\n", w, r[4 * w]), 0;
    if (r[4 * w + 1] != h[4 * w]) return std::printf("error: warp %d read %g after waiting, expected %g\n", w, r[4 * w + 1], h[4 * w]), 0;
  }
  if (r[6] != 1.0f) return std::printf("error: warp 1 read the flag as %g: warp 0 did not run ahead\n", r[6]), 0;
  std::printf("ok async order\n");
  return 0;
}

int outOfMemory() {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, (size_t)1 << 40);
  if (e != cudaErrorMemoryAllocation) {
    std::printf("error: a 1 TiB allocation returned %s\n", cudaGetErrorName(e));
    return 0;
  }
  size_t f = 0, t = 0;
  cudaMemGetInfo(&f, &t);
  std::printf("ok out of memory (%s; %zu of %zu free)\n", cudaGetErrorString(e), f, t);
  return 0;
}

int overrun() {
  float* d = deviceArray<float>(1000);
  ONESTEP_LAUNCH(writeKernel, 4, 256)(d, 1000 + 2048);  // past the end: the guard page faults
  std::printf("error: no fault\n");
  return 0;
}

int capture() {
  float* d = deviceArray<float>(100);
  std::vector<float> h(100, 1.0f);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaMemcpy(d, h.data(), 400, cudaMemcpyHostToDevice);
  if (const cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal)) return fails("begin capture", e);
  ONESTEP_LAUNCH(writeKernel, 1, 64, 0, s)(d, (int64_t)100);
  ONESTEP_LAUNCH(writeKernel, 1, 64, 0, s)(d, (int64_t)100);
  cudaGraph_t g;
  if (const cudaError_t e = cudaStreamEndCapture(s, &g)) return fails("end capture", e);
  cudaMemcpy(h.data(), d, 400, cudaMemcpyDeviceToHost);
  if (h[7] != 1.0f) {
    std::printf("error: a captured launch ran during the capture\n");
    return 0;
  }
  cudaGraphExec_t e;
  cudaGraphInstantiate(&e, g, 0);
  cudaGraphLaunch(e, s);
  cudaGraphLaunch(e, s);
  cudaStreamSynchronize(s);
  cudaMemcpy(h.data(), d, 400, cudaMemcpyDeviceToHost);
  if (h[99] != 5.0f) {
    std::printf("error: two replays of two launches gave %g, expected 5\n", h[99]);
    return 0;
  }
  // a synchronous copy inside a capture is refused and invalidates it, as CUDA does
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  const cudaError_t c = cudaMemcpy(d, h.data(), 400, cudaMemcpyHostToDevice);
  const cudaError_t end = cudaStreamEndCapture(s, &g);
  if (c != cudaErrorStreamCaptureUnsupported || end != cudaErrorStreamCaptureInvalidated) {
    std::printf("error: a synchronous copy during a capture gave %s then %s\n", cudaGetErrorName(c), cudaGetErrorName(end));
    return 0;
  }
  std::printf("ok capture\n");
  return 0;
}

int copyKinds() {
  float* d = deviceArray<float>(10);
  float h[10] = {0};
  const cudaError_t e = cudaMemcpy(h, d, 40, cudaMemcpyHostToDevice);  // the kind is backwards
  if (e != cudaErrorInvalidValue) {
    std::printf("error: a backwards copy returned %s\n", cudaGetErrorName(e));
    return 0;
  }
  const cudaError_t e2 = cudaMemcpy(d + 5, h, 40, cudaMemcpyHostToDevice);  // leaves the allocation
  if (e2 != cudaErrorInvalidValue) {
    std::printf("error: a copy past the allocation returned %s\n", cudaGetErrorName(e2));
    return 0;
  }
  std::printf("ok copy kinds\n");
  return 0;
}

// Four OS threads launching at once (graphs run on several libuv workers): every launch runs
// whole, once.
int concurrent() {
  const int64_t n = 2048;
  const int threads = 4, launches = 300;
  std::vector<float*> bufs;
  std::vector<float> h(n, 0.0f);
  for (int t = 0; t < threads; ++t) {
    bufs.push_back(deviceArray<float>(n));
    cudaMemcpy(bufs.back(), h.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  }
  auto many = [n, launches](float* p) {
    for (int i = 0; i < launches; ++i) ONESTEP_LAUNCH(writeKernel, 64, 32)(p, n);
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(many, bufs[t]);
  for (auto& t : pool) t.join();
  for (float* p : bufs) {
    cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost);
    for (int64_t i = 0; i < n; ++i)
      if (h[i] != (float)launches) {
        std::printf("error: element %lld is %g after %d launches\n", (long long)i, h[i], launches);
        return 0;
      }
  }
  std::printf("ok concurrent\n");
  return 0;
}

int badConfig() {
  int* d = deviceArray<int>(1);
  ONESTEP_LAUNCH(barrierKernel, 1, 2048)(d);
  return fails("block of 2048 threads", cudaGetLastError());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string c = argc > 1 ? argv[1] : "";
  if (c == "shuffles") return shuffles();
  if (c == "barriers") return barriers();
  if (c == "divergent-barrier") return launchOnly("divergent barrier", divergentBarrierKernel, 64);
  if (c == "exited-lane") return exitedLane();
  if (c == "wmma") return wmmaCase(0, false);
  if (c == "wmma-misaligned") return wmmaCase(8, false);
  if (c == "wmma-skipped-lane") return wmmaCase(16, true);
  if (c == "mma") return mmaCase();
  if (c == "async-order") return asyncOrder();
  if (c == "out-of-memory") return outOfMemory();
  if (c == "overrun") return overrun();
  if (c == "capture") return capture();
  if (c == "copy-kinds") return copyKinds();
  if (c == "bad-config") return badConfig();
  if (c == "concurrent") return concurrent();
  std::printf("error: unknown case %s\n", c.c_str());
  return 2;
}
