// linear and conv2d on the warp-level tensor-core primitives of mma.cuh (sm_80+): the own GEMM
// gemm.cu's planner chooses when no vendor library takes the node and the operands allow it — x
// stored in the weight's operand type (fp16, or bf16), K (conv: the input channels) a multiple of
// 8, 16-byte aligned rows. C[M, N] = epilogue(A[M, K] W[N, K]^T), the epilogue as gemm.cu's.
//
// A block of 8 warps (2 x 4) owns a BM x 128 tile of C (BM 128, or 64 when 128-row tiles would
// leave the GPU's multiprocessors idle), each warp BM/2 x 32 of it in fp32 registers. A and W pass
// through shared memory 32 columns of K at a time, double buffered: the next slice is fetched by
// cp.async (16 bytes per thread and copy; rows past M or N, and a conv's zero padding, are zeros
// written directly) while the current one is multiplied by mma.sync m16n8k16 on ldmatrix fragments.
// Shared rows are padded to 40 halves (80 bytes) so that ldmatrix's eight row reads hit distinct
// banks. For a conv (implicit GEMM over NHWC, kernel [Co, kh, kw, Ci] on the device) a 16-byte
// chunk of A is 8 channels of one input pixel of one tap (Ci % 8 == 0), found from each row's
// output pixel (decomposed once per block) and the chunk's tap: zero padding, stride and fused
// nearest upsampling as in gemm.cu.
#include "mma.cuh"
#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kBN = 128, kBK = 32, kPitch = kBK + 8;
constexpr int kThreads = 256;

template <class T, int BM>
struct GemmSmem {
  T a[2][BM][kPitch];
  T b[2][kBN][kPitch];
  int rowY[BM], rowX[BM], rowB[BM];  // conv: each row's output pixel
};

// One 16-byte chunk of A (row r, columns k .. k + 7 of K) into shared memory.
template <bool kConv, class T, int BM>
__device__ __forceinline__ void loadA(GemmSmem<T, BM>& s, int st, const T* __restrict__ x, int64_t m0, int64_t M, int64_t K, int64_t k0,
                                      const GemmConv& g) {
  constexpr int chunks = BM * (kBK / 8);
  for (int e = threadIdx.x; e < chunks; e += kThreads) {
    const int r = e / (kBK / 8), c = (e % (kBK / 8)) * 8;
    const int64_t m = m0 + r, k = k0 + c;
    T* dst = &s.a[st][r][c];
    const T* src = nullptr;
    if (m < M && k < K) {
      if constexpr (kConv) {
        const int kq = (int)k, ci = kq % g.C, tap = kq / g.C, iy = s.rowY[r] + tap / g.kw, ix = s.rowX[r] + tap % g.kw;
        if (iy >= 0 && iy < g.H * g.up && ix >= 0 && ix < g.W * g.up) src = x + ((int64_t)(s.rowB[r] + iy / g.up) * g.W + ix / g.up) * g.C + ci;
      } else {
        src = x + m * K + k;
      }
    }
    if (src) cpAsync16(dst, src);
    else *reinterpret_cast<uint4*>(dst) = uint4{0u, 0u, 0u, 0u};
  }
}

template <class T, int BM>
__device__ __forceinline__ void loadB(GemmSmem<T, BM>& s, int st, const T* __restrict__ w, int64_t n0, int64_t N, int64_t K, int64_t k0) {
  constexpr int chunks = kBN * (kBK / 8);
  for (int e = threadIdx.x; e < chunks; e += kThreads) {
    const int r = e / (kBK / 8), c = (e % (kBK / 8)) * 8;
    const int64_t n = n0 + r, k = k0 + c;
    T* dst = &s.b[st][r][c];
    if (n < N && k < K) cpAsync16(dst, w + n * K + k);
    else *reinterpret_cast<uint4*>(dst) = uint4{0u, 0u, 0u, 0u};
  }
}

template <bool kConv, class T, int BM>
__global__ void __launch_bounds__(kThreads) gemmMmaKernel(const T* __restrict__ x, const T* __restrict__ w, ActOut y, int64_t M, int64_t N,
                                                          int64_t K, GemmConv g, GemmEpilogue ep) {
  constexpr int WM = BM / 2 / 16;  // m16 tiles per warp (warps: 2 along M, 4 along N; 32 columns = 4 n8 tiles each)
  __shared__ __align__(16) GemmSmem<T, BM> s;
  const int64_t m0 = (int64_t)blockIdx.x * BM, n0 = (int64_t)blockIdx.y * kBN;  // M on x: a VAE's millions of rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, wm = warp / 4, wn = warp % 4;
  if constexpr (kConv) {
    for (int r = threadIdx.x; r < BM; r += kThreads) {
      const int m = m0 + r < M ? (int)(m0 + r) : 0;
      const int ox = m % g.Wo, oy = (m / g.Wo) % g.Ho, b = m / (g.Wo * g.Ho);
      s.rowY[r] = oy * g.sh - g.pt;
      s.rowX[r] = ox * g.sw - g.pl;
      s.rowB[r] = b * g.H;
    }
    __syncthreads();
  }
  float acc[WM][4][4];
#pragma unroll
  for (int i = 0; i < WM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  const int64_t tiles = (K + kBK - 1) / kBK;
  loadA<kConv, T, BM>(s, 0, x, m0, M, K, 0, g);
  loadB<T, BM>(s, 0, w, n0, N, K, 0);
  cpAsyncCommit();
  // ldmatrix row addresses: lane l feeds row l % 8 of matrix l / 8
  const int mi = lane % 8, mj = lane / 8;
  const int aRow = mi + 8 * (mj % 2), aCol = 8 * (mj / 2);  // A: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15), a[0..3]
  const int bRow = mi + 8 * (mj / 2), bCol = 8 * (mj % 2);  // W: (n 0-7: k 0-7, k 8-15), (n 8-15: ...)
  for (int64_t t = 0; t < tiles; ++t) {
    const int st = (int)(t & 1);
    if (t + 1 < tiles) {
      loadA<kConv, T, BM>(s, st ^ 1, x, m0, M, K, (t + 1) * kBK, g);
      loadB<T, BM>(s, st ^ 1, w, n0, N, K, (t + 1) * kBK);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t a[WM][4], b[4][2];
#pragma unroll
      for (int i = 0; i < WM; ++i) ldmatrixX4(a[i], &s.a[st][wm * (BM / 2) + i * 16 + aRow][kk + aCol]);
#pragma unroll
      for (int j = 0; j < 4; j += 2) {
        uint32_t r[4];
        ldmatrixX4(r, &s.b[st][wn * 32 + j * 8 + bRow][kk + bCol]);
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < WM; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma16816<T>(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // the slice is read before the next iteration's copies overwrite it
  }
  // epilogue from the accumulators: d[r] = C[g + 8 (r / 2)][2t + r % 2] of each 16 x 8 tile
  const int gq = lane / 4, tq = lane % 4;
#pragma unroll
  for (int i = 0; i < WM; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + wm * (BM / 2) + i * 16 + gq + 8 * (r / 2), n = n0 + wn * 32 + j * 8 + 2 * tq + r % 2;
        if (m >= M || n >= N) continue;
        float v = acc[i][j][r];
        if (ep.bias) v += ep.bias[n];
        v = applyAct(ep.act, v);
        if (ep.residual) v += ep.residual[m * N + n];
        y[m * N + n] = v;
      }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <bool kConv, class T>
void launchTiles(bool tall, dim3 grid, const onestep_cuda_tensor& x, const onestep_cuda_tensor& w, ActOut y, int64_t M, int64_t N, int64_t K,
                 const GemmConv& g, const GemmEpilogue& ep, cudaStream_t s) {
  const T* xp = static_cast<const T*>(x.data);
  const T* wp = static_cast<const T*>(w.data);
  if (tall) {
    const auto kernel = gemmMmaKernel<kConv, T, 128>;
    ONESTEP_LAUNCH(kernel, grid, kThreads, 0, s)(xp, wp, y, M, N, K, g, ep);
  } else {
    const auto kernel = gemmMmaKernel<kConv, T, 64>;
    ONESTEP_LAUNCH(kernel, grid, kThreads, 0, s)(xp, wp, y, M, N, K, g, ep);
  }
}

}  // namespace

Status gemmMmaLimits(bool conv, const onestep_cuda_tensor& x, const onestep_cuda_tensor& w, int64_t M, int64_t N, int64_t K) {
  if (ccMajor() < 8) return Status::fail("the mma GEMM needs compute capability 8.0 or newer");
  if (w.dtype != ONESTEP_CUDA_F16 && w.dtype != ONESTEP_CUDA_BF16) return Status::fail("the mma GEMM takes fp16 or bf16 weights");
  if (x.dtype != w.dtype) return Status::fail("the mma GEMM reads x stored in the weight's type");
  if (K % 8 || (conv && x.shape[3] % 8)) return Status::fail("the mma GEMM needs K (a conv's input channels) in multiples of 8");
  if ((M + 63) / 64 > 0x7fffffff || (N + kBN - 1) / kBN > 65535) return Status::fail("the GEMM is too large for one grid");
  return Status::ok();
}

Status launchGemmMma(bool conv, const onestep_cuda_tensor& x, const onestep_cuda_tensor& w, ActOut y, int64_t M, int64_t N, int64_t K,
                     const GemmConv& g, const GemmEpilogue& ep, int tile, cudaStream_t s) {
  const Status fits = gemmMmaLimits(conv, x, w, M, N, K);
  if (!fits.good()) return fits;
  if (!aligned16(x.data) || !aligned16(w.data)) return Status::fail("the mma GEMM needs 16-byte aligned x and weights");
  if (M == 0 || N == 0) return Status::ok();
  // 128-row tiles unless they leave multiprocessors idle (the text encoder's 77 rows, small latents)
  static const int sms = [] {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) n = 1;
    cudaGetLastError();
    return n;
  }();
  const int64_t gn = (N + kBN - 1) / kBN;
  const bool tall = tile ? tile == 128 : ((M + 127) / 128) * gn >= 2 * sms;
  const dim3 grid((unsigned)((M + (tall ? 127 : 63)) / (tall ? 128 : 64)), (unsigned)gn);
  if (w.dtype == ONESTEP_CUDA_BF16) {
    if (conv) launchTiles<true, __nv_bfloat16>(tall, grid, x, w, y, M, N, K, g, ep, s);
    else launchTiles<false, __nv_bfloat16>(tall, grid, x, w, y, M, N, K, g, ep, s);
  } else {
    if (conv) launchTiles<true, __half>(tall, grid, x, w, y, M, N, K, g, ep, s);
    else launchTiles<false, __half>(tall, grid, x, w, y, M, N, K, g, ep, s);
  }
  return launched(conv ? "conv2d (mma)" : "linear (mma)");
}

}  // namespace onestep_cuda
