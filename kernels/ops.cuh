// The launchers of each op family (one .cu file each); dispatch.cu routes a node to its launcher.
// A family whose kernels cannot take every valid node has a `...Limits` function beside its
// launcher: what the kernels cannot do, as a failed Status naming it (from shapes, dtypes and
// attributes only: it is asked at plan time, without data, and such a node runs on the CPU); the
// launcher calls it too.
#pragma once

#include "common.cuh"
#include "vendor/loader.h"

namespace onestep_cuda {

// Algorithms a launcher may choose at plan time (onestep_cuda_node::algorithm); 0 is its own kernels.
enum Algorithm : int32_t { kAlgoOwn = 0, kAlgoCublasLt = 1, kAlgoCudnn = 2, kAlgoMma = 3 };

// Compute capability major of the current device (cached; gemm.cu).
int ccMajor();

// gemm.cu: linear and conv2d (implicit GEMM on NHWC), tensor cores, fused epilogue
Status linearLimits(const onestep_cuda_node& n);
Status launchLinear(const onestep_cuda_node& n, cudaStream_t s);
Status conv2dLimits(const onestep_cuda_node& n);
Status launchConv2d(const onestep_cuda_node& n, cudaStream_t s);
Status planLinear(const onestep_cuda_node& n, onestep_cuda_node_plan* out);
Status planConv2d(const onestep_cuda_node& n, onestep_cuda_node_plan* out);
// What the GEMMs share: a conv's implicit-GEMM map over NHWC (32-bit sizes: the launchers check
// they fit) and the epilogue (+ bias[n], activation, + residual[m, n]: native/cpu/gemm.h's order).
struct GemmConv {
  int H, W, C;  // input
  int Ho, Wo;   // output
  int kh, kw, sh, sw, pt, pl, up;
};
struct GemmEpilogue {
  ActIn bias;      // [N] or null
  ActIn residual;  // [M, N] or null
  int act;
};
// gemm_mma.cu: the pipelined GEMM on mma.sync / ldmatrix / cp.async (sm_80+; x stored in the
// weight's 16-bit type, K and a conv's channels multiples of 8, 16-byte aligned x and weights)
Status gemmMmaLimits(bool conv, const onestep_cuda_tensor& x, const onestep_cuda_tensor& w, int64_t M, int64_t N, int64_t K);
// tile: 64 or 128 rows per block, 0 to choose (128 unless that leaves multiprocessors idle)
Status launchGemmMma(bool conv, const onestep_cuda_tensor& x, const onestep_cuda_tensor& w, ActOut y, int64_t M, int64_t N, int64_t K,
                     const GemmConv& g, const GemmEpilogue& ep, int tile, cudaStream_t s);
// cublaslt.cu: cuBLASLt loaded at run time; Y[M, N] = act(X[M, K] W[N, K]^T + bias) + residual
struct LtGemm {
  int64_t M, N, K;
  int operand;  // the weight's type on the device: ONESTEP_CUDA_F16 or ONESTEP_CUDA_BF16
  bool bias, residual;
  int act;
  int x, out, biasType, residualType;  // how X, Y, the bias and the residual are stored (F32 / F16 / BF16)
};
// Any matmul through cuBLASLt, in its column-major terms: D[m, n] = alpha op(A) op(B) (+ C when
// accumulate) (+ bias[m]); A and B of type `operand`, C, D and the bias of type `out` (float32 or a
// 16-bit type), C with D's layout; strides and
// leading dimensions in elements; align*: the bytes every pointer (batch offsets included) is
// aligned to (the heuristic chooses for them). Workspace: what the plan said.
struct LtMatmul {
  int64_t m = 0, n = 0, k = 0;
  bool transA = false, transB = false;
  int64_t lda = 0, ldb = 0, ldd = 0;
  int32_t batch = 1;
  int64_t strideA = 0, strideB = 0, strideD = 0;
  int operand = ONESTEP_CUDA_F16;
  int out = ONESTEP_CUDA_F32;
  bool bias = false, accumulate = false;
  uint32_t alignA = 256, alignB = 256, alignCD = 256;
};
Status cublasLtMatmulPlan(const LtMatmul& m, uint64_t* workspaceBytes);
Status cublasLtMatmulRun(const LtMatmul& m, float alpha, const void* A, const void* B, const void* C, void* D, const void* bias, void* workspace,
                         uint64_t workspaceBytes, cudaStream_t s);
// The largest power of two <= base that divides byteOffset (the alignment a sub-matrix keeps).
uint32_t ltAlignment(uint64_t byteOffset, uint32_t base);
bool cublasLtUsable();
Status cublasLtPlan(const LtGemm& g, uint64_t* workspaceBytes);
Status cublasLtRun(const LtGemm& g, ActIn x, const void* w, ActIn bias, ActIn residual, ActOut y, void* workspace, uint64_t workspaceBytes,
                   cudaStream_t s);
std::string cublasLtInfoJson();
// cudnn.cu: cuDNN 9 loaded at run time; a convolution over NHWC x [B, H, W, C] with a [Co, kh, kw, C]
// kernel, symmetric padding ph, pw, no dilation; y = act(conv + bias) + residual. x is the node's
// input [B, srcH, srcW, C], read in place when it is stored in the operand type, else rounded to it
// in the workspace and, when `materialize`, nearest-upsampled by `up` and zero-padded by padTop /
// padLeft (and up to H, W at the bottom / right) there.
struct DnnConv {
  int B, H, W, C, Co, kh, kw, sh, sw, ph, pw, Ho, Wo;
  int operand;  // the kernel's type on the device: ONESTEP_CUDA_F16 or ONESTEP_CUDA_BF16
  int srcH, srcW, up, padTop, padLeft;
  bool materialize;
  int x, out;  // how the input and the output are stored (F32 / F16 / BF16)
};
bool cudnnUsable();
Status cudnnPlan(const DnnConv& c, uint64_t* workspaceBytes);
Status cudnnRun(const DnnConv& c, ActIn x, const void* w, ActIn bias, ActIn residual, int act, ActOut y, void* workspace, uint64_t workspaceBytes,
                cudaStream_t s);
std::string cudnnInfoJson();
// attention.cu
Status attentionLimits(const onestep_cuda_node& n);
Status launchAttention(const onestep_cuda_node& n, cudaStream_t s);
Status planAttention(const onestep_cuda_node& n, onestep_cuda_node_plan* out);
// attention_mma.cu: the FA2-style kernel (mma.sync, ldmatrix, cp.async; sm_80+), heads up to 160
constexpr int64_t kAttentionMmaMaxHead = 160;
Status attentionMmaLimits(const onestep_cuda_node& n);
Status launchAttentionMma(const onestep_cuda_node& n, cudaStream_t s);
// norm.cu
Status groupNormLimits(const onestep_cuda_node& n);
Status launchGroupNorm(const onestep_cuda_node& n, cudaStream_t s);
Status planGroupNorm(const onestep_cuda_node& n, onestep_cuda_node_plan* out);
Status layerNormLimits(const onestep_cuda_node& n);
Status launchLayerNorm(const onestep_cuda_node& n, cudaStream_t s);
// elementwise.cu
Status launchAdd(const onestep_cuda_node& n, cudaStream_t s);
Status launchMul(const onestep_cuda_node& n, cudaStream_t s);
Status launchUnary(const onestep_cuda_node& n, cudaStream_t s);
Status launchGeglu(const onestep_cuda_node& n, cudaStream_t s);
Status schedulerStepLimits(const onestep_cuda_node& n);
Status launchSchedulerStep(const onestep_cuda_node& n, cudaStream_t s);
// shape.cu
Status launchConcat(const onestep_cuda_node& n, cudaStream_t s);
Status launchUpsample(const onestep_cuda_node& n, cudaStream_t s);
Status launchPermute(const onestep_cuda_node& n, cudaStream_t s);
Status launchSlice(const onestep_cuda_node& n, cudaStream_t s);
Status launchAvgPool(const onestep_cuda_node& n, cudaStream_t s);
Status launchEmbedding(const onestep_cuda_node& n, cudaStream_t s);
Status launchSelectRows(const onestep_cuda_node& n, cudaStream_t s);
Status timestepEmbeddingLimits(const onestep_cuda_node& n);
Status launchTimestepEmbedding(const onestep_cuda_node& n, cudaStream_t s);
// dispatch.cu: checks a node and calls its launcher; whether a node has one that takes it
Status runNode(const onestep_cuda_node& n, cudaStream_t s);
Status supportsNode(const onestep_cuda_node& n);
Status planNode(const onestep_cuda_node& n, onestep_cuda_node_plan* out);
// convert.cu
Status launchConvert(void* dst, int dstDtype, const void* src, int srcDtype, int64_t n, cudaStream_t s);
// LoRA fusion into a weight on the device (kernels/lora.cu; the table's lora_fuse).
Status launchLoraFuse(const onestep_cuda_tensor& out, const onestep_cuda_tensor& base, int nParts, const onestep_cuda_tensor* ups,
                      const onestep_cuda_tensor* downs, const float* factors, int64_t cin, cudaStream_t s);

}  // namespace onestep_cuda
