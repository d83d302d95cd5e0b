// linear and conv2d as one tensor-core GEMM: C[M, N] = epilogue(A[M, K] * W[N, K]^T), with
//   linear: A = x rows;  conv2d: A gathered from NHWC x by the implicit-GEMM map (zero padding,
//   stride, fused nearest upsampling), W = the kernel prepared as [Co, kh, kw, Ci];
//   epilogue: + bias[n], activation, + residual[m, n] (native/cpu/gemm.h's order).
// Activations (x, the residual, y) are stored as F32 or the graph's 16-bit type (ActIn / ActOut);
// operands are rounded to the tensor-core operand type in shared memory — fp16, or bf16 when the
// weight is bf16 (graphs that need fp32's range upload their weights so: GraphSpec::gemmOperand;
// sm_80 and newer) — and multiplied by WMMA 16x16x16 with fp32 accumulation. 64x64 tiles per
// block of 4 warps (2x2, 32x32 each), K in steps of 32.
// This is the first, straightforward version: scalar loads, no pipelining (see docs/CUDA.md).
// Each node's plan (planLinear / planConv2d) may instead choose a vendor library loaded at run
// time: cuBLASLt for linear and 1x1 convolutions (cublaslt.cu), cuDNN for the other convolutions it
// takes (cudnn.cu); the launchers follow the node's `algorithm`.
#include <mma.h>

#include <cstdlib>
#include <string>
#include <type_traits>

#include "ops.cuh"

// bf16 WMMA exists from sm_80 on (and in the host pass and cusim)
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define ONESTEP_BF16_WMMA 1
#endif

namespace onestep_cuda {

namespace {

using namespace nvcuda;

constexpr int BM = 64, BN = 64, BK = 32, PAD = 8;
constexpr int kThreads = 128;


template <bool kConv, class T>
__device__ __forceinline__ void gemmBody(ActIn x, const void* __restrict__ w, int wDtype, ActOut y, int64_t M,
                                         int64_t N, int64_t K, const GemmConv& g, const GemmEpilogue& ep) {
  __shared__ __align__(32) T As[BM][BK + PAD];
  __shared__ __align__(32) T Bs[BN][BK + PAD];
  __shared__ __align__(32) float Cs[BM][BN + 4];
  __shared__ int rowY[BM], rowX[BM], rowB[BM];  // conv: each row's output pixel, decomposed once
  const int64_t m0 = (int64_t)blockIdx.y * BM, n0 = (int64_t)blockIdx.x * BN;
  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
  if constexpr (kConv) {
    for (int r = threadIdx.x; r < BM; r += kThreads) {
      const int m = m0 + r < M ? (int)(m0 + r) : 0;
      const int ox = m % g.Wo, oy = (m / g.Wo) % g.Ho, b = m / (g.Wo * g.Ho);
      rowY[r] = oy * g.sh - g.pt;  // + ky: the input row (in the upsampled image)
      rowX[r] = ox * g.sw - g.pl;
      rowB[r] = b * g.H;
    }
    __syncthreads();
  }

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    for (int e = threadIdx.x; e < BM * BK; e += kThreads) {
      const int r = e / BK, c = e % BK;
      const int64_t m = m0 + r, k = k0 + c;
      float v = 0.0f;
      if (m < M && k < K) {
        if constexpr (kConv) {  // the implicit-GEMM gather: zero padding, stride, nearest upsampling
          const int kq = (int)k, ci = kq % g.C, tap = kq / g.C, iy = rowY[r] + tap / g.kw, ix = rowX[r] + tap % g.kw;
          if (iy >= 0 && iy < g.H * g.up && ix >= 0 && ix < g.W * g.up) v = x[((int64_t)(rowB[r] + iy / g.up) * g.W + ix / g.up) * g.C + ci];
        } else {
          v = x[m * K + k];
        }
      }
      As[r][c] = toOperand<T>(v);
    }
    for (int e = threadIdx.x; e < BN * BK; e += kThreads) {
      const int r = e / BK, c = e % BK;
      const int64_t n = n0 + r, k = k0 + c;
      Bs[r][c] = toOperand<T>(n < N && k < K ? loadAny(w, wDtype, n * K + k) : 0.0f);
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], &As[wm * 32 + i * 16][kk], BK + PAD);
      // B(k, n) = W[n][k]: column-major with the leading dimension along k
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b[j], &Bs[wn * 32 + j * 16][kk], BK + PAD);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::store_matrix_sync(&Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], BN + 4, wmma::mem_row_major);
  __syncthreads();
  for (int e = threadIdx.x; e < BM * BN; e += kThreads) {
    const int r = e / BN, c = e % BN;
    const int64_t m = m0 + r, n = n0 + c;
    if (m >= M || n >= N) continue;
    float v = Cs[r][c];
    if (ep.bias) v += ep.bias[n];
    v = applyAct(ep.act, v);
    if (ep.residual) v += ep.residual[m * N + n];
    y[m * N + n] = v;
  }
}

template <bool kConv, class T>
__global__ void __launch_bounds__(kThreads) gemmKernel(ActIn x, const void* __restrict__ w, int wDtype, ActOut y,
                                                       int64_t M, int64_t N, int64_t K, GemmConv g, GemmEpilogue ep) {
#ifndef ONESTEP_BF16_WMMA
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    __trap();  // never launched below sm_80 (the launcher and the executor check); loud if it were
  } else
#endif
    gemmBody<kConv, T>(x, w, wDtype, y, M, N, K, g, ep);
}

}  // namespace

// Compute capability major of the current device (cached: one device per process).
int ccMajor() {
  static int major = [] {
    int dev = 0, m = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&m, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) m = 0;
    cudaGetLastError();
    return m;
  }();
  return major;
}

namespace {

// What the GEMM kernel cannot take: an M x N grid beyond CUDA's limits, bf16 before Ampere.
Status gemmLimits(const char* op, const onestep_cuda_tensor& w, int64_t M, int64_t N) {
  const int64_t gy = (M + BM - 1) / BM, gx = (N + BN - 1) / BN;
  if (gy > 65535 || gx > 0x7fffffff) return Status::fail(std::string(op) + ": the GEMM (" + std::to_string(M) + " x " + std::to_string(N) + ") is too large for one grid");
  if (w.dtype == ONESTEP_CUDA_BF16 && ccMajor() < 8) return Status::fail(std::string(op) + ": bf16 tensor-core operands need compute capability 8.0 or newer");
  return Status::ok();
}

Status run(bool conv, ActIn x, const onestep_cuda_tensor& w, ActOut y, int64_t M, int64_t N, int64_t K, const GemmConv& g,
           const GemmEpilogue& ep, cudaStream_t s) {
  if (M == 0 || N == 0) return Status::ok();
  const int64_t gy = (M + BM - 1) / BM, gx = (N + BN - 1) / BN;
  const dim3 grid((unsigned)gx, (unsigned)gy);
  const bool bf16 = w.dtype == ONESTEP_CUDA_BF16;
  const auto kernel = conv ? (bf16 ? gemmKernel<true, __nv_bfloat16> : gemmKernel<true, half>)
                            : (bf16 ? gemmKernel<false, __nv_bfloat16> : gemmKernel<false, half>);
  ONESTEP_LAUNCH(kernel, grid, kThreads, 0, s)(x, w.data, w.dtype, y, M, N, K, g, ep);
  return launched(conv ? "conv2d" : "linear");
}

GemmEpilogue epilogueOf(const onestep_cuda_node& n, onestep::Act act) {
  GemmEpilogue ep;
  ep.bias = actIn(n, 2);
  ep.residual = actIn(n, 3);
  ep.act = (int)act;
  return ep;
}

// The vendor libraries' paths (cublaslt.cu, cudnn.cu), chosen per node at plan time.
LtGemm ltGemmOf(const onestep_cuda_node& n, int64_t M, int64_t N, int64_t K, onestep::Act act) {
  return LtGemm{M, N, K, n.inputs[1].dtype, given(n, 2), given(n, 3), (int)act, n.inputs[0].dtype, n.output.dtype,
                given(n, 2) ? n.inputs[2].dtype : ONESTEP_CUDA_F32, given(n, 3) ? n.inputs[3].dtype : ONESTEP_CUDA_F32};
}

void choosePlan(onestep_cuda_node_plan* out, int32_t algorithm, uint64_t workspace, const char* name) {
  out->algorithm = algorithm;
  out->workspace_bytes = workspace;
  std::snprintf(out->name, sizeof(out->name), "%s", name);
}

bool vendorOperand(int dtype) { return dtype == ONESTEP_CUDA_F16 || dtype == ONESTEP_CUDA_BF16; }

// cuBLASLt when it is loaded and has an algorithm for the GEMM; true when chosen
bool planLt(const LtGemm& g, onestep_cuda_node_plan* out) {
  uint64_t ws = 0;
  if (!vendorOperand(g.operand) || !cublasLtUsable() || !cublasLtPlan(g, &ws).good()) return false;
  choosePlan(out, kAlgoCublasLt, ws, "cublaslt");
  return true;
}

// A conv2d as cuDNN's legacy API takes it (sizes in int): symmetric padding is cuDNN's own; a fused
// nearest upsampling or an asymmetric padding (the VAE encoder's downsampling) is materialised in
// the workspace with the rounded input, cuDNN then padding nothing
bool dnnConvOf(const onestep_cuda_node& n, DnnConv* c) {
  const onestep_cuda_tensor &x = n.inputs[0], &w = n.inputs[1], &o = n.output;
  const auto a = attrsOf<onestep::Conv2dAttrs>(n);
  if (!vendorOperand(w.dtype)) return false;
  const int64_t up = a.upsample;
  const bool symmetric = a.pad_top == a.pad_bottom && a.pad_left == a.pad_right;
  const bool materialize = up > 1 || !symmetric;
  const int64_t H = x.shape[1] * up + (symmetric ? 0 : a.pad_top + a.pad_bottom), W = x.shape[2] * up + (symmetric ? 0 : a.pad_left + a.pad_right);
  if (numel(w) >= 0x7fffffff || numel(o) >= 0x7fffffff || x.shape[0] * H * W * x.shape[3] >= 0x7fffffff) return false;
  DnnConv d;
  d.B = (int)x.shape[0], d.H = (int)H, d.W = (int)W, d.C = (int)x.shape[3];
  d.Co = (int)w.shape[0], d.kh = (int)w.shape[1], d.kw = (int)w.shape[2], d.sh = (int)a.stride_h, d.sw = (int)a.stride_w;
  d.ph = symmetric ? (int)a.pad_top : 0, d.pw = symmetric ? (int)a.pad_left : 0;
  d.Ho = (int)o.shape[1], d.Wo = (int)o.shape[2], d.operand = w.dtype;
  d.srcH = (int)x.shape[1], d.srcW = (int)x.shape[2], d.up = (int)up;
  d.padTop = symmetric ? 0 : (int)a.pad_top, d.padLeft = symmetric ? 0 : (int)a.pad_left;
  d.materialize = materialize;
  d.x = x.dtype, d.out = o.dtype;
  *c = d;
  return true;
}

bool planDnn(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  DnnConv c;
  uint64_t ws = 0;
  if (!dnnConvOf(n, &c) || !cudnnUsable() || !cudnnPlan(c, &ws).good()) return false;
  choosePlan(out, kAlgoCudnn, ws, "cudnn");
  return true;
}

Status runLt(const onestep_cuda_node& n, const LtGemm& g, cudaStream_t s) {
  return cublasLtRun(g, actIn(n.inputs[0]), n.inputs[1].data, actIn(n, 2), actIn(n, 3), actOut(n.output), n.workspace, n.workspace_bytes, s);
}

// ONESTEP_CUDA_GEMM: "auto" (unset: the mma GEMM where it takes the node, its tile height chosen
// per GEMM), "wmma" (the first WMMA kernel), "mma64" / "mma128" (the mma GEMM with that tile height
// always), so that a GPU session can time the own GEMMs against each other and tests reach every
// tile; any other value is refused at plan time, naming it.
enum class GemmMode { kAuto, kWmma, kMma64, kMma128, kBad };
GemmMode gemmMode() {
  const char* e = std::getenv("ONESTEP_CUDA_GEMM");
  const std::string v = e ? e : "";
  if (v.empty() || v == "auto") return GemmMode::kAuto;
  if (v == "wmma") return GemmMode::kWmma;
  if (v == "mma64") return GemmMode::kMma64;
  if (v == "mma128") return GemmMode::kMma128;
  return GemmMode::kBad;
}
int mmaTile() { return gemmMode() == GemmMode::kMma64 ? 64 : gemmMode() == GemmMode::kMma128 ? 128 : 0; }

// The own GEMM for a node no vendor library took: the mma one where its limits allow
Status gemmModeStatus() {
  if (gemmMode() == GemmMode::kBad)
    return Status::fail("ONESTEP_CUDA_GEMM must be auto, wmma, mma64 or mma128, got '" + std::string(std::getenv("ONESTEP_CUDA_GEMM")) + "'");
  return Status::ok();
}

Status planOwn(const onestep_cuda_node& n, bool conv, int64_t M, int64_t N, int64_t K, const char* mma, const char* wmma,
               onestep_cuda_node_plan* out) {
  if (gemmMode() != GemmMode::kWmma && gemmMmaLimits(conv, n.inputs[0], n.inputs[1], M, N, K).good()) choosePlan(out, kAlgoMma, 0, mma);
  else choosePlan(out, kAlgoOwn, 0, wmma);
  return Status::ok();
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

bool pointwise(const onestep::Conv2dAttrs& a, const onestep_cuda_tensor& w) {
  return w.shape[1] == 1 && w.shape[2] == 1 && a.stride_h == 1 && a.stride_w == 1 && a.upsample == 1 && a.pad_top == 0 && a.pad_left == 0 &&
         a.pad_bottom == 0 && a.pad_right == 0;
}

}  // namespace

// linear: cuBLASLt, else the own GEMM
Status planLinear(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  const int64_t N = n.inputs[1].shape[0], K = n.inputs[1].shape[1], M = numel(n.output) / (N ? N : 1);
  const Status mode = gemmModeStatus();  // refused whichever path would take the node
  if (!mode.good()) return mode;
  if (planLt(ltGemmOf(n, M, N, K, attrsOf<onestep::LinearAttrs>(n).act), out)) return Status::ok();
  return planOwn(n, false, M, N, K, "mma", "wmma", out);
}

// conv2d: a 1x1 one is a GEMM (cuBLASLt first), the rest cuDNN where it takes them, else the own
// implicit GEMM
Status planConv2d(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  const onestep_cuda_tensor &w = n.inputs[1], &o = n.output;
  const auto a = attrsOf<onestep::Conv2dAttrs>(n);
  const bool pw = pointwise(a, w);
  const Status mode = gemmModeStatus();
  if (!mode.good()) return mode;
  if (pw && planLt(ltGemmOf(n, o.shape[0] * o.shape[1] * o.shape[2], w.shape[0], w.shape[3], a.act), out)) return Status::ok();
  if (planDnn(n, out)) return Status::ok();
  return planOwn(n, !pw, o.shape[0] * o.shape[1] * o.shape[2], w.shape[0], w.shape[1] * w.shape[2] * w.shape[3], pw ? "mma" : "implicit-gemm mma",
                 pw ? "wmma" : "implicit-gemm wmma", out);
}

Status linearLimits(const onestep_cuda_node& n) {
  const int64_t N = n.inputs[1].shape[0];
  return gemmLimits("linear", n.inputs[1], numel(n.output) / (N ? N : 1), N);
}

Status launchLinear(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &x = n.inputs[0], &w = n.inputs[1];
  const int64_t N = w.shape[0], K = w.shape[1];
  const int64_t M = numel(n.output) / (N ? N : 1);
  const Status fits = linearLimits(n);
  if (!fits.good()) return fits;
  if (n.algorithm == kAlgoCublasLt) return runLt(n, ltGemmOf(n, M, N, K, attrsOf<onestep::LinearAttrs>(n).act), s);
  // the mma GEMM where the pointers allow (views may start anywhere), else the first kernel
  if (n.algorithm == kAlgoMma && aligned16(x.data) && aligned16(w.data))
    return launchGemmMma(false, x, w, actOut(n.output), M, N, K, GemmConv{}, epilogueOf(n, attrsOf<onestep::LinearAttrs>(n).act), mmaTile(), s);
  return run(false, actIn(x), w, actOut(n.output), M, N, K, GemmConv{},
             epilogueOf(n, attrsOf<onestep::LinearAttrs>(n).act), s);
}

// the kernel as the device holds it: [Co, kh, kw, Ci]
Status conv2dLimits(const onestep_cuda_node& n) {
  const onestep_cuda_tensor &x = n.inputs[0], &w = n.inputs[1], &o = n.output;
  const int64_t up = attrsOf<onestep::Conv2dAttrs>(n).upsample;
  const int64_t N = w.shape[0], K = w.shape[1] * w.shape[2] * w.shape[3], M = o.shape[0] * o.shape[1] * o.shape[2];
  if (M >= 0x7fffffff || K >= 0x7fffffff || x.shape[0] * x.shape[1] >= 0x7fffffff || x.shape[1] * up >= 0x7fffffff || x.shape[2] * up >= 0x7fffffff)
    return Status::fail("conv2d: sizes beyond 2^31 are not supported by the CUDA kernel");
  return gemmLimits("conv2d", w, M, N);
}

Status launchConv2d(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &x = n.inputs[0], &w = n.inputs[1], &o = n.output;
  const auto a = attrsOf<onestep::Conv2dAttrs>(n);
  const int64_t N = w.shape[0], K = w.shape[1] * w.shape[2] * w.shape[3], M = o.shape[0] * o.shape[1] * o.shape[2];
  const int64_t up = a.upsample;
  const Status fits = conv2dLimits(n);
  if (!fits.good()) return fits;
  if (n.algorithm == kAlgoCublasLt) {
    if (!pointwise(a, w)) return Status::fail("conv2d: cuBLASLt takes only 1x1 convolutions with stride 1, no padding or upsampling");
    return runLt(n, ltGemmOf(n, M, N, K, a.act), s);
  }
  if (n.algorithm == kAlgoCudnn) {
    DnnConv c;
    if (!dnnConvOf(n, &c)) return Status::fail("conv2d: sizes beyond cuDNN's int range");
    return cudnnRun(c, actIn(x), w.data, actIn(n, 2), actIn(n, 3), (int)a.act, actOut(o), n.workspace, n.workspace_bytes, s);
  }
  GemmConv g{(int)x.shape[1], (int)x.shape[2], (int)x.shape[3], (int)o.shape[1], (int)o.shape[2], (int)w.shape[1],
            (int)w.shape[2],   (int)a.stride_h, (int)a.stride_w, (int)a.pad_top, (int)a.pad_left, (int)up};
  if (n.algorithm == kAlgoMma && aligned16(x.data) && aligned16(w.data)) return launchGemmMma(!pointwise(a, w), x, w, actOut(o), M, N, K, g, epilogueOf(n, a.act), mmaTile(), s);
  return run(!pointwise(a, w), actIn(x), w, actOut(o), M, N, K, g, epilogueOf(n, a.act), s);
}

}  // namespace onestep_cuda
