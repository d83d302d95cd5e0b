// Scaled dot-product attention over [B, N, H*D] tokens with the online softmax (no score matrix
// is stored): one warp per (sample, head, query); each lane holds D/32 of the query and Dv/32 of
// the running output, keys are visited in order with a running max and sum. fp32 throughout.
// This is the first, straightforward version (no tensor cores, no K/V tiling in shared memory):
// the flash-attention kernel with mma.sync replaces it once a GPU session can measure (docs/CUDA.md).
#include <cfloat>

#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 16;  // head sizes up to 512 (the VAE's single-head attention)

__global__ void __launch_bounds__(kWarps * 32) attentionKernel(const float* __restrict__ q, const float* __restrict__ k,
                                                               const float* __restrict__ v, float* __restrict__ o, int64_t B, int64_t Nq,
                                                               int64_t Nk, int64_t H, int64_t D, int64_t Dv, float scale, bool causal) {
  const int lane = threadIdx.x % 32;
  const int64_t row = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;  // over B * H * Nq
  if (row >= B * H * Nq) return;
  const int64_t i = row % Nq, h = (row / Nq) % H, b = row / (Nq * H);
  const float* qr = q + (b * Nq + i) * H * D + h * D;
  float qv[kMaxPerLane], acc[kMaxPerLane];
  for (int t = 0; t < kMaxPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    qv[t] = d < D ? qr[d] * scale : 0.0f;
    acc[t] = 0.0f;
  }
  float mx = -FLT_MAX, sum = 0.0f;
  const int64_t keys = causal ? (i + 1 < Nk ? i + 1 : Nk) : Nk;
  for (int64_t j = 0; j < keys; ++j) {
    const float* kr = k + (b * Nk + j) * H * D + h * D;
    float s = 0.0f;
    for (int t = 0; t < kMaxPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < D) s += qv[t] * kr[d];
    }
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    const float nmx = s > mx ? s : mx;
    const float corr = expf(mx - nmx);
    const float p = expf(s - nmx);
    sum = sum * corr + p;
    const float* vr = v + (b * Nk + j) * H * Dv + h * Dv;
    for (int t = 0; t < kMaxPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < Dv) acc[t] = acc[t] * corr + p * vr[d];
    }
    mx = nmx;
  }
  float* orow = o + (b * Nq + i) * H * Dv + h * Dv;
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int t = 0; t < kMaxPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < Dv) orow[d] = acc[t] * inv;
  }
}

}  // namespace

Status launchAttention(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &q = n.inputs[0], &k = n.inputs[1], &v = n.inputs[2];
  if (q.rank != 3 || k.rank != 3 || v.rank != 3) return Status::fail("attention: q, k, v must be [B, N, H*D]");
  const int64_t B = q.shape[0], Nq = q.shape[1], Nk = k.shape[1], H = (int64_t)n.attrs[0];
  if (H <= 0 || q.shape[2] % H || v.shape[2] % H) return Status::fail("attention: widths must divide into heads");
  const int64_t D = q.shape[2] / H, Dv = v.shape[2] / H;
  if (D > 32 * kMaxPerLane || Dv > 32 * kMaxPerLane) return Status::fail("attention: head size above 512 is not supported by the CUDA kernel");
  if (k.shape[2] != q.shape[2] || v.shape[1] != Nk) return Status::fail("attention: k and v do not match q");
  const int64_t rows = B * H * Nq;
  if (rows == 0) return Status::ok();
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  if (blocks > 0x7fffffff) return Status::fail("attention: too many queries for one grid");
  attentionKernel<<<(unsigned)blocks, kWarps * 32, 0, s>>>(static_cast<const float*>(q.data), static_cast<const float*>(k.data),
                                                            static_cast<const float*>(v.data), static_cast<float*>(n.output.data), B, Nq, Nk, H,
                                                            D, Dv, (float)n.attrs[1], n.attrs[2] != 0);
  return launched("attention");
}

}  // namespace onestep_cuda
