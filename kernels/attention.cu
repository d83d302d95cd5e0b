// Scaled dot-product attention over [B, N, H*D] tokens with the online softmax (no score matrix
// is stored), two kernels:
//  - flashKernel (head sizes up to 64: SD1.x's 40, SD2.x / SDXL / CLIP's 64): a block of 4 warps
//    takes 64 queries of one (sample, head); K and V pass through shared memory 32 keys at a time
//    as fp16; each warp computes its 16 x 32 scores and then P x V on tensor cores (WMMA, fp32
//    accumulation); the softmax (running max and sum per query row) and the output stay in fp32,
//    each row held by a pair of lanes;
//  - attentionKernel (any head size up to 512, e.g. the VAE's single 512-wide head): one warp per
//    (sample, head, query), fp32 throughout, keys visited one by one.
#include <mma.h>

#include <algorithm>
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

using namespace nvcuda;

constexpr int kFlashRows = 64;  // queries per block (16 per warp)
constexpr int kFlashKeys = 32;  // keys per shared-memory tile
constexpr int kFlashMaxD = 64;  // head sizes the flash kernel takes (padded to a multiple of 16)
constexpr int kSPitch = kFlashMaxD + 4;  // floats per row of the score / product buffer

// Dp, Dvp: D and Dv rounded up to 16 (zero padded in shared memory).
__global__ void __launch_bounds__(128) flashKernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                                   float* __restrict__ o, int64_t Nq, int64_t Nk, int64_t H, int D, int Dv, int Dp,
                                                   int Dvp, float scale, bool causal) {
  __shared__ __align__(32) half Qs[kFlashRows][kFlashMaxD + 8];
  __shared__ __align__(32) half Ks[kFlashKeys][kFlashMaxD + 8];
  __shared__ __align__(32) half Vs[kFlashKeys][kFlashMaxD + 8];
  __shared__ __align__(32) half Ps[kFlashRows][kFlashKeys + 8];
  __shared__ __align__(32) float Ss[kFlashRows][kSPitch];  // scores, then P x V of the tile
  constexpr int qp = kFlashMaxD + 8, pp = kFlashKeys + 8;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t bh = blockIdx.y, b = bh / H, h = bh % H;
  const int64_t i0 = (int64_t)blockIdx.x * kFlashRows;
  const int64_t qStride = H * D, vStride = H * Dv;
  const float* qb = q + b * Nq * qStride + h * D;
  const float* kb = k + b * Nk * qStride + h * D;
  const float* vb = v + b * Nk * vStride + h * Dv;

  for (int e = threadIdx.x; e < kFlashRows * Dp; e += blockDim.x) {
    const int r = e / Dp, d = e % Dp;
    const int64_t i = i0 + r;
    Qs[r][d] = __float2half(i < Nq && d < D ? qb[i * qStride + d] * scale : 0.0f);
  }
  // this lane's row (within the warp's 16) and its half of the output columns
  const int row = lane / 2, wrow = warp * 16 + row, c0 = (lane % 2) * 32;
  const int64_t qi = i0 + wrow;
  float acc[32];
  for (int c = 0; c < 32; ++c) acc[c] = 0.0f;
  float mx = -FLT_MAX, sum = 0.0f;
  // keys this block needs: all, or up to its last query for a causal mask
  const int64_t lastKey = causal ? (i0 + kFlashRows < Nk ? i0 + kFlashRows : Nk) : Nk;

  for (int64_t j0 = 0; j0 < lastKey; j0 += kFlashKeys) {
    __syncthreads();  // the previous tile's K and V are no longer read
    for (int e = threadIdx.x; e < kFlashKeys * Dp; e += blockDim.x) {
      const int r = e / Dp, d = e % Dp;
      const int64_t j = j0 + r;
      Ks[r][d] = __float2half(j < Nk && d < D ? kb[j * qStride + d] : 0.0f);
    }
    for (int e = threadIdx.x; e < kFlashKeys * Dvp; e += blockDim.x) {
      const int r = e / Dvp, d = e % Dvp;
      const int64_t j = j0 + r;
      Vs[r][d] = __float2half(j < Nk && d < Dv ? vb[j * vStride + d] : 0.0f);
    }
    __syncthreads();

    // S (16 x 32) = Q_warp (16 x Dp) K_tile^T
    for (int n = 0; n < kFlashKeys / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s;
      wmma::fill_fragment(s, 0.0f);
      for (int kk = 0; kk < Dp; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> bk;  // B(d, j) = K[j][d]
        wmma::load_matrix_sync(a, &Qs[warp * 16][kk], qp);
        wmma::load_matrix_sync(bk, &Ks[n * 16][kk], qp);
        wmma::mma_sync(s, a, bk, s);
      }
      wmma::store_matrix_sync(&Ss[warp * 16][n * 16], s, kSPitch, wmma::mem_row_major);
    }
    __syncwarp();

    // online softmax over this tile: the lane pair of each row splits its 32 scores
    float tileMax = -FLT_MAX;
    for (int t = 0; t < 16; ++t) {
      const int jj = (lane % 2) * 16 + t;
      const int64_t j = j0 + jj;
      const bool valid = j < Nk && (!causal || j <= qi);
      const float sc = valid ? Ss[wrow][jj] : -FLT_MAX;
      Ss[wrow][jj] = sc;
      tileMax = sc > tileMax ? sc : tileMax;
    }
    tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 1));
    const float nmx = tileMax > mx ? tileMax : mx;
    const float corr = nmx == -FLT_MAX ? 1.0f : expf(mx - nmx);
    float part = 0.0f;
    for (int t = 0; t < 16; ++t) {
      const int jj = (lane % 2) * 16 + t;
      const float sc = Ss[wrow][jj];
      const float p = sc == -FLT_MAX ? 0.0f : expf(sc - nmx);
      part += p;
      Ps[wrow][jj] = __float2half(p);
    }
    part += __shfl_xor_sync(0xffffffffu, part, 1);
    sum = sum * corr + part;
    mx = nmx;
    __syncwarp();

    // tile product (16 x Dvp) = P_warp (16 x 32) V_tile, into the warp's rows of Ss
    for (int n = 0; n < Dvp; n += 16) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> pv;
      wmma::fill_fragment(pv, 0.0f);
      for (int kk = 0; kk < kFlashKeys; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> bv;
        wmma::load_matrix_sync(a, &Ps[warp * 16][kk], pp);
        wmma::load_matrix_sync(bv, &Vs[kk][n], qp);
        wmma::mma_sync(pv, a, bv, pv);
      }
      wmma::store_matrix_sync(&Ss[warp * 16][n], pv, kSPitch, wmma::mem_row_major);
    }
    __syncwarp();
    for (int c = 0; c < 32; ++c)
      if (c0 + c < Dvp) acc[c] = acc[c] * corr + Ss[wrow][c0 + c];
    __syncwarp();  // Ss is rewritten by the next tile's scores
  }

  if (qi < Nq) {
    float* orow = o + (b * Nq + qi) * vStride + h * Dv;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int c = 0; c < 32; ++c)
      if (c0 + c < Dv) orow[c0 + c] = acc[c] * inv;
  }
}

}  // namespace

Status attentionLimits(const onestep_cuda_node& n) {
  const onestep_cuda_tensor &q = n.inputs[0], &v = n.inputs[2];
  const int64_t B = q.shape[0], Nq = q.shape[1], H = attrsOf<onestep::AttentionAttrs>(n).heads;
  const int64_t D = q.shape[2] / H, Dv = v.shape[2] / H;
  if (D > 32 * kMaxPerLane || Dv > 32 * kMaxPerLane)
    return Status::fail("attention: head size " + std::to_string(std::max(D, Dv)) + " is above the CUDA kernel's " + std::to_string(32 * kMaxPerLane));
  if (D <= kFlashMaxD && Dv <= kFlashMaxD) {
    if ((Nq + kFlashRows - 1) / kFlashRows > 0x7fffffff || B * H > 65535) return Status::fail("attention: too many queries or heads for one grid");
  } else if ((B * H * Nq + kWarps - 1) / kWarps > 0x7fffffff) {
    return Status::fail("attention: too many queries for one grid");
  }
  return Status::ok();
}

Status launchAttention(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &q = n.inputs[0], &k = n.inputs[1], &v = n.inputs[2];
  const auto a = attrsOf<onestep::AttentionAttrs>(n);
  const int64_t B = q.shape[0], Nq = q.shape[1], Nk = k.shape[1], H = a.heads;
  const int64_t D = q.shape[2] / H, Dv = v.shape[2] / H;
  const Status fits = attentionLimits(n);
  if (!fits.good()) return fits;
  const int64_t rows = B * H * Nq;
  if (rows == 0) return Status::ok();
  if (D <= kFlashMaxD && Dv <= kFlashMaxD) {
    const int64_t tiles = (Nq + kFlashRows - 1) / kFlashRows;
    const int Dp = (int)((D + 15) / 16 * 16), Dvp = (int)((Dv + 15) / 16 * 16);
    ONESTEP_LAUNCH(flashKernel, dim3((unsigned)tiles, (unsigned)(B * H)), 128, 0, s)(
        static_cast<const float*>(q.data), static_cast<const float*>(k.data), static_cast<const float*>(v.data),
        static_cast<float*>(n.output.data), Nq, Nk, H, (int)D, (int)Dv, Dp, Dvp, (float)a.scale, a.causal);
    return launched("attention");
  }
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  ONESTEP_LAUNCH(attentionKernel, (unsigned)blocks, kWarps * 32, 0, s)(static_cast<const float*>(q.data), static_cast<const float*>(k.data),
                                                            static_cast<const float*>(v.data), static_cast<float*>(n.output.data), B, Nq, Nk, H,
                                                            D, Dv, (float)a.scale, a.causal);
  return launched("attention");
}

}  // namespace onestep_cuda
