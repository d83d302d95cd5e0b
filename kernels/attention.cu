// Scaled dot-product attention over [B, N, H*D] tokens with the online softmax (no score matrix
// is stored). On sm_80+ heads up to 160 (keys and values alike) take the FA2-style kernel of
// attention_mma.cu; the rest, and older GPUs, these:
//  - flashKernel (head sizes up to 64: SD1.x's 40, SD2.x / SDXL / CLIP's 64): a block of 4 warps
//    takes 64 queries of one (sample, head); K and V pass through shared memory 32 keys at a time
//    as fp16; each warp computes its 16 x 32 scores and then P x V on tensor cores (WMMA, fp32
//    accumulation); the softmax (running max and sum per query row) and the output stay in fp32,
//    each row held by a pair of lanes;
//  - attentionKernel (any head size up to 512, e.g. the VAE's single 512-wide head): one warp per
//    (sample, head, query), fp32 throughout, keys visited one by one;
//  - where cuBLASLt is loaded, heads above 64 (SD1.5's 80 and 160, the VAE's 512) are two batched
//    GEMMs and a softmax instead (planAttention): per sample, S = scale Q K^T for every head into the
//    workspace (fp32), P = softmax(S) rounded to the operand type, O = P V straight into the output
//    (in its storage type). Q, K and V stored in the operand type are read in place, float32 ones
//    rounded into the workspace first.
#include <mma.h>

#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <string>

#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxPerLane = 16;  // head sizes up to 512 (the VAE's single-head attention)

__global__ void __launch_bounds__(kWarps * 32) attentionKernel(ActIn q, ActIn k, ActIn v, ActOut o, int64_t B, int64_t Nq,
                                                               int64_t Nk, int64_t H, int64_t D, int64_t Dv, float scale, bool causal) {
  const int lane = threadIdx.x % 32;
  const int64_t row = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;  // over B * H * Nq
  if (row >= B * H * Nq) return;
  const int64_t i = row % Nq, h = (row / Nq) % H, b = row / (Nq * H);
  const ActIn qr = q + (b * Nq + i) * H * D + h * D;
  float qv[kMaxPerLane], acc[kMaxPerLane];
  for (int t = 0; t < kMaxPerLane; ++t) {
    const int64_t d = lane + 32 * t;
    qv[t] = d < D ? qr[d] * scale : 0.0f;
    acc[t] = 0.0f;
  }
  float mx = -FLT_MAX, sum = 0.0f;
  const int64_t keys = causal ? (i + 1 < Nk ? i + 1 : Nk) : Nk;
  for (int64_t j = 0; j < keys; ++j) {
    const ActIn kr = k + (b * Nk + j) * H * D + h * D;
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
    const ActIn vr = v + (b * Nk + j) * H * Dv + h * Dv;
    for (int t = 0; t < kMaxPerLane; ++t) {
      const int64_t d = lane + 32 * t;
      if (d < Dv) acc[t] = acc[t] * corr + p * vr[d];
    }
    mx = nmx;
  }
  const ActOut orow = o + (b * Nq + i) * H * Dv + h * Dv;
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
__global__ void __launch_bounds__(128) flashKernel(ActIn q, ActIn k, ActIn v, ActOut o, int64_t Nq, int64_t Nk, int64_t H, int D, int Dv, int Dp,
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
  const ActIn qb = q + b * Nq * qStride + h * D;
  const ActIn kb = k + b * Nk * qStride + h * D;
  const ActIn vb = v + b * Nk * vStride + h * Dv;

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
    const ActOut orow = o + (b * Nq + qi) * vStride + h * Dv;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int c = 0; c < 32; ++c)
      if (c0 + c < Dv) orow[c0 + c] = acc[c] * inv;
  }
}

// Row-wise softmax of S (fp32) into P (the operand type), both [H][Nq rows of ld][stride per head],
// rows = H * Nq of one sample; a causal mask lets query i see keys 0..i. One warp per row.
template <class T>
__global__ void __launch_bounds__(kWarps * 32) softmaxRowsKernel(const float* __restrict__ S, T* __restrict__ P, int64_t rows, int64_t Nq,
                                                                 int64_t Nk, int64_t ld, int64_t stride, bool causal) {
  const int64_t r = (int64_t)blockIdx.x * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // a whole warp leaves together
  const int64_t at = r / Nq * stride + r % Nq * ld;
  const float* s = S + at;
  T* p = P + at;
  const int64_t i = r % Nq, visible = causal ? (i + 1 < Nk ? i + 1 : Nk) : Nk;
  float m = -FLT_MAX;
  for (int64_t j = lane; j < visible; j += 32) m = fmaxf(m, s[j]);
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  float sum = 0.0f;
  for (int64_t j = lane; j < visible; j += 32) sum += expf(s[j] - m);
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float inv = 1.0f / sum;
  for (int64_t j = lane; j < Nk; j += 32) p[j] = toOperand<T>(j < visible ? expf(s[j] - m) * inv : 0.0f);
}

// The two matmuls of one sample (cuBLASLt's column-major terms; batches are the heads):
// S^T[Nk, Nq] = K Q^T, and O^T[Dv, Nq] = V^T P^T. S and P rows are ld apart and heads stride
// apart, both padded so that every row and head starts 16-byte aligned (tensor-core algorithms).
struct LtAttention {
  int64_t B, Nq, Nk, H, D, Dv, ld, stride;
  int operand;
  LtMatmul scores, values;
  uint64_t qBytes, kBytes, vBytes, sBytes, pBytes, ltWorkspace;  // qBytes.. 0: read in place
  uint64_t total() const { return qBytes + kBytes + vBytes + sBytes + pBytes + ltWorkspace; }
};

constexpr uint64_t kMaxScoreBytes = 1ull << 30;  // beyond, the own kernel (no score matrix)

bool ltAttentionOf(const onestep_cuda_node& n, LtAttention* out) {
  const onestep_cuda_tensor &q = n.inputs[0], &k = n.inputs[1], &v = n.inputs[2];
  const int64_t H = attrsOf<onestep::AttentionAttrs>(n).heads;
  LtAttention a;
  a.B = q.shape[0], a.Nq = q.shape[1], a.Nk = k.shape[1], a.H = H, a.D = q.shape[2] / H, a.Dv = v.shape[2] / H;
  a.operand = n.operand == ONESTEP_CUDA_BF16 ? ONESTEP_CUDA_BF16 : ONESTEP_CUDA_F16;
  // heads of a multiple of 8 (16-byte aligned in fp16: tensor-core GEMMs), and a score matrix that fits
  if (a.D % 8 || a.Dv % 8 || a.B == 0 || a.Nq == 0 || a.Nk == 0 || a.H > 0x7fffffff || (uint64_t)a.H * a.Nq * (a.Nk + 8) * 4 > kMaxScoreBytes)
    return false;
  const int64_t HD = H * a.D, HDv = H * a.Dv;
  // an input in the operand type is read where it is (the arena aligns values to 64 bytes), others rounded into the workspace
  const auto copyBytes = [&](const onestep_cuda_tensor& t) { return t.dtype == a.operand ? 0 : scratchBytes((uint64_t)numel(t) * 2); };
  const auto base = [&](const onestep_cuda_tensor& t) { return t.dtype == a.operand ? 64u : (uint32_t)kScratchAlign; };
  a.qBytes = copyBytes(q), a.kBytes = copyBytes(k), a.vBytes = copyBytes(v);
  a.ld = (a.Nk + 7) / 8 * 8, a.stride = (a.Nq * a.ld + 63) / 64 * 64;
  a.sBytes = scratchBytes((uint64_t)H * a.stride * 4), a.pBytes = scratchBytes((uint64_t)H * a.stride * 2);
  LtMatmul& s = a.scores;  // A = K_b (stored [Nk, H*D]: D x Nk, ld H*D, head h at +h*D), B = Q_b likewise
  s.m = a.Nk, s.n = a.Nq, s.k = a.D, s.transA = true, s.transB = false, s.lda = HD, s.ldb = HD, s.ldd = a.ld;
  s.batch = (int32_t)H, s.strideA = a.D, s.strideB = a.D, s.strideD = a.stride, s.operand = a.operand;
  s.alignA = ltAlignment((uint64_t)a.D * 2, ltAlignment((uint64_t)a.Nk * HD * 2, base(k)));  // sample b at +b*Nk*H*D
  s.alignB = ltAlignment((uint64_t)a.D * 2, ltAlignment((uint64_t)a.Nq * HD * 2, base(q)));
  s.alignCD = (uint32_t)kScratchAlign;
  LtMatmul& o = a.values;  // A = V_b (Dv x Nk, ld H*Dv, head at +h*Dv), B = P (Nk x Nq, ld Nk), D = O_b (Dv x Nq, ld H*Dv)
  o.m = a.Dv, o.n = a.Nq, o.k = a.Nk, o.transA = false, o.transB = false, o.lda = HDv, o.ldb = a.ld, o.ldd = HDv;
  o.batch = (int32_t)H, o.strideA = a.Dv, o.strideB = a.stride, o.strideD = a.Dv, o.operand = a.operand, o.out = n.output.dtype;
  o.alignA = ltAlignment((uint64_t)a.Dv * 2, ltAlignment((uint64_t)a.Nk * HDv * 2, base(v)));
  o.alignB = ltAlignment((uint64_t)a.stride * 2, (uint32_t)kScratchAlign);
  const uint64_t ob = (uint64_t)floatBytes(o.out);  // the output in the arena (64-byte aligned), in its storage type
  o.alignCD = ltAlignment((uint64_t)a.Dv * ob, ltAlignment((uint64_t)a.Nq * HDv * ob, 64));
  uint64_t ws1 = 0, ws2 = 0;
  if (!cublasLtMatmulPlan(s, &ws1).good() || !cublasLtMatmulPlan(o, &ws2).good()) return false;
  a.ltWorkspace = scratchBytes(std::max(ws1, ws2));
  *out = a;
  return true;
}

Status runLtAttention(const onestep_cuda_node& n, cudaStream_t st) {
  LtAttention a;
  if (!ltAttentionOf(n, &a)) return Status::fail("attention: cuBLASLt has no plan for this node");
  if (!n.workspace || n.workspace_bytes < a.total()) return Status::fail("attention: the node's workspace is smaller than planned");
  uint8_t* ws = static_cast<uint8_t*>(n.workspace);
  float* S = reinterpret_cast<float*>(ws + a.qBytes + a.kBytes + a.vBytes);
  uint8_t *p16 = reinterpret_cast<uint8_t*>(S) + a.sBytes, *ltWs = p16 + a.pBytes;
  // Q, K, V in the operand type: in place, or rounded into the workspace
  Status s = Status::ok();
  uint8_t* operands[3];
  uint8_t* at = ws;
  for (int i = 0; i < 3 && s.good(); ++i) {
    const onestep_cuda_tensor& t = n.inputs[i];
    if (t.dtype == a.operand) {
      operands[i] = static_cast<uint8_t*>(t.data);
      continue;
    }
    operands[i] = at;
    at += i == 0 ? a.qBytes : i == 1 ? a.kBytes : a.vBytes;
    s = launchConvert(operands[i], a.operand, t.data, t.dtype, numel(t), st);
  }
  uint8_t *q16 = operands[0], *k16 = operands[1], *v16 = operands[2];
  const bool causal = attrsOf<onestep::AttentionAttrs>(n).causal;
  const float scale = (float)attrsOf<onestep::AttentionAttrs>(n).scale;
  const int64_t HD = a.H * a.D, HDv = a.H * a.Dv, rows = a.H * a.Nq;
  for (int64_t b = 0; b < a.B && s.good(); ++b) {
    s = cublasLtMatmulRun(a.scores, scale, k16 + b * a.Nk * HD * 2, q16 + b * a.Nq * HD * 2, nullptr, S, nullptr, ltWs, a.ltWorkspace, st);
    if (!s.good()) break;
    const unsigned blocks = (unsigned)((rows + kWarps - 1) / kWarps);
    if (a.operand == ONESTEP_CUDA_BF16)
      ONESTEP_LAUNCH(softmaxRowsKernel<__nv_bfloat16>, blocks, kWarps * 32, 0, st)(S, reinterpret_cast<__nv_bfloat16*>(p16), rows, a.Nq, a.Nk, a.ld, a.stride, causal);
    else
      ONESTEP_LAUNCH(softmaxRowsKernel<__half>, blocks, kWarps * 32, 0, st)(S, reinterpret_cast<__half*>(p16), rows, a.Nq, a.Nk, a.ld, a.stride, causal);
    s = launched("attention (cuBLASLt) softmax");
    if (s.good())
      s = cublasLtMatmulRun(a.values, 1.0f, v16 + b * a.Nk * HDv * 2, p16, nullptr,
                            static_cast<uint8_t*>(n.output.data) + b * a.Nq * HDv * floatBytes(n.output.dtype), nullptr, ltWs, a.ltWorkspace, st);
  }
  return s;
}

// ONESTEP_CUDA_ATTENTION picks the algorithm family for the heads it takes, so that a GPU session can
// time them against each other (bench-ops.js): unset or "auto" (below), "cublaslt" (cuBLASLt's two
// GEMMs for every head size they take), "wmma" (the WMMA flash kernel for heads up to 64, not the
// mma one). Any other value is refused at plan time, naming it.
enum class AttentionMode { kAuto, kCublasLt, kWmma, kBad };
AttentionMode attentionMode() {
  static const AttentionMode mode = [] {
    const char* e = std::getenv("ONESTEP_CUDA_ATTENTION");
    const std::string v = e ? e : "";
    if (v.empty() || v == "auto") return AttentionMode::kAuto;
    if (v == "cublaslt") return AttentionMode::kCublasLt;
    if (v == "wmma") return AttentionMode::kWmma;
    return AttentionMode::kBad;
  }();
  return mode;
}

void named(onestep_cuda_node_plan* out, int32_t algorithm, uint64_t workspace, const char* name) {
  out->algorithm = algorithm;
  out->workspace_bytes = workspace;
  std::snprintf(out->name, sizeof(out->name), "%s", name);
}

}  // namespace

// Heads up to 160 with keys and values alike: the FA2-style kernel (attention_mma.cu, sm_80+); else
// heads up to 64: the WMMA flash kernel; larger ones: cuBLASLt's two GEMMs where it is loaded, else
// the warp-per-query kernel.
Status planAttention(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  const onestep_cuda_tensor &q = n.inputs[0], &v = n.inputs[2];
  const int64_t H = attrsOf<onestep::AttentionAttrs>(n).heads, D = q.shape[2] / H, Dv = v.shape[2] / H;
  std::memset(out, 0, sizeof(*out));
  const AttentionMode mode = attentionMode();
  if (mode == AttentionMode::kBad) return Status::fail("ONESTEP_CUDA_ATTENTION must be auto, cublaslt or wmma, got '" + std::string(std::getenv("ONESTEP_CUDA_ATTENTION")) + "'");
  const bool small = D <= kFlashMaxD && Dv <= kFlashMaxD;
  if (mode == AttentionMode::kAuto && attentionMmaLimits(n).good()) {
    named(out, kAlgoMma, 0, "flash mma");
    return Status::ok();
  }
  if (small && mode != AttentionMode::kCublasLt) {
    named(out, kAlgoOwn, 0, "flash wmma");
    return Status::ok();
  }
  LtAttention a;
  if (cublasLtUsable() && ltAttentionOf(n, &a)) {
    named(out, kAlgoCublasLt, a.total(), "cublaslt");
    return Status::ok();
  }
  named(out, kAlgoOwn, 0, small ? "flash wmma" : "warp per query");
  return Status::ok();
}

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
  if (n.algorithm == kAlgoMma) return launchAttentionMma(n, s);
  if (n.algorithm == kAlgoCublasLt) return runLtAttention(n, s);
  if (D <= kFlashMaxD && Dv <= kFlashMaxD) {
    const int64_t tiles = (Nq + kFlashRows - 1) / kFlashRows;
    const int Dp = (int)((D + 15) / 16 * 16), Dvp = (int)((Dv + 15) / 16 * 16);
    ONESTEP_LAUNCH(flashKernel, dim3((unsigned)tiles, (unsigned)(B * H)), 128, 0, s)(
        actIn(q), actIn(k), actIn(v), actOut(n.output), Nq, Nk, H, (int)D, (int)Dv, Dp, Dvp, (float)a.scale, a.causal);
    return launched("attention");
  }
  const int64_t blocks = (rows + kWarps - 1) / kWarps;
  ONESTEP_LAUNCH(attentionKernel, (unsigned)blocks, kWarps * 32, 0, s)(actIn(q), actIn(k), actIn(v), actOut(n.output), B, Nq, Nk, H,
                                                            D, Dv, (float)a.scale, a.causal);
  return launched("attention");
}

}  // namespace onestep_cuda
