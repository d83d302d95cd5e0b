// Attention, FA2-style, on the warp-level tensor-core primitives of mma.cuh (sm_80+): the own
// kernel attention.cu's planner chooses for head sizes up to 160 (SD1.x's 40, 80 and 160; CLIP,
// SD2.x and SDXL's 64).
//
// A block of 4 warps takes 64 queries of one (sample, head), 16 per warp. Each warp holds its Q
// rows as mma A fragments in registers (read once from global memory, rounded to the operand type),
// and its output rows and softmax state (running max and sum per row) in fp32 registers. K and V
// pass through shared memory Bc keys at a time, double buffered: the next tile is fetched by
// cp.async while the current one is multiplied (when K and V are stored in the operand type with
// 16-byte rows; otherwise converted by ordinary loads). Per tile, S = Q K^T by mma.sync m16n8k16
// with B fragments from ldmatrix, the online softmax on S in registers (exp2 with the scale folded
// in), and O += P V with P's accumulator registers reused, rounded, as the A fragments and V's
// B fragments from ldmatrix.trans. The head size is padded to a multiple of 16 (Dp, a template
// parameter: 48, 64, 80, 128, 160) with zeros in shared memory and registers.
#include <cfloat>
#include <cmath>

#include "mma.cuh"
#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 16 * kWarps;  // queries per block

template <int Dp>
struct Tile {
  static constexpr int Bc = Dp <= 80 ? 64 : 32;  // keys per tile: two K and two V tiles stay within 48 KB
  static constexpr int Pitch = Dp + 8;           // halves per shared row (16 bytes of padding: ldmatrix without bank conflicts)
};

__device__ __forceinline__ uint32_t pack2(float lo, float hi, bool bf16) {
  uint16_t a, b;
  if (bf16) {
    const __nv_bfloat16 x = __float2bfloat16_rn(lo), y = __float2bfloat16_rn(hi);
    memcpy(&a, &x, 2);
    memcpy(&b, &y, 2);
  } else {
    const __half x = __float2half_rn(lo), y = __float2half_rn(hi);
    memcpy(&a, &x, 2);
    memcpy(&b, &y, 2);
  }
  return (uint32_t)a | ((uint32_t)b << 16);
}

// Rows [j0, j0 + Bc) of a K or V head (row stride `stride` elements) into a shared tile of Dp
// columns: by cp.async when `async` (the storage is T, D % 8 == 0: 16-byte chunks), else by
// converting loads; rows past Nk are zeros (columns past D are zeroed once, at the start).
template <class T, int Dp>
__device__ __forceinline__ void loadTile(T* tile, ActIn src, int64_t stride, int64_t j0, int64_t Nk, int D, bool async) {
  constexpr int Bc = Tile<Dp>::Bc, Pitch = Tile<Dp>::Pitch;
  if (async) {
    const int chunks = D / 8;  // 16-byte chunks per row
    for (int e = threadIdx.x; e < Bc * chunks; e += blockDim.x) {
      const int r = e / chunks, c = (e % chunks) * 8;
      const int64_t j = j0 + r;
      T* dst = tile + r * Pitch + c;
      if (j < Nk) {
        cpAsync16(dst, static_cast<const T*>(src.p) + j * stride + c);
      } else {
        *reinterpret_cast<uint4*>(dst) = uint4{0, 0, 0, 0};
      }
    }
  } else {
    for (int e = threadIdx.x; e < Bc * Dp; e += blockDim.x) {
      const int r = e / Dp, c = e % Dp;
      const int64_t j = j0 + r;
      tile[r * Pitch + c] = toOperand<T>(j < Nk && c < D ? src[j * stride + c] : 0.0f);
    }
  }
}

template <class T, int Dp>
__global__ void __launch_bounds__(kWarps * 32) flashMmaKernel(ActIn q, ActIn k, ActIn v, ActOut o, int64_t Nq, int64_t Nk, int64_t H, int D,
                                                              float scaleLog2, bool causal, bool async) {
  constexpr int Bc = Tile<Dp>::Bc, Pitch = Tile<Dp>::Pitch;
  constexpr int KC = Dp / 16;  // k-chunks of Q K^T
  constexpr int NT = Bc / 8;   // n-tiles of S (8 keys each)
  constexpr int DT = Dp / 8;   // n-tiles of O (8 columns each)
  constexpr bool kBf16 = std::is_same<T, __nv_bfloat16>::value;
  __shared__ __align__(16) T Ks[2][Bc * Pitch];
  __shared__ __align__(16) T Vs[2][Bc * Pitch];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int64_t bh = blockIdx.y, b = bh / H, h = bh % H;
  const int64_t i0 = (int64_t)blockIdx.x * kRows, stride = H * D;
  const ActIn qb = q + b * Nq * stride + h * D, kb = k + b * Nk * stride + h * D, vb = v + b * Nk * stride + h * D;

  // padding columns D..Dp of every tile stay zero (cp.async writes only the first D)
  for (int e = threadIdx.x; e < 2 * Bc * (Dp - D); e += blockDim.x) {
    const int buf = e / (Bc * (Dp - D)), r = e / (Dp - D) % Bc, c = D + e % (Dp - D);
    Ks[buf][r * Pitch + c] = toOperand<T>(0.0f);
    Vs[buf][r * Pitch + c] = toOperand<T>(0.0f);
  }

  // this warp's Q rows as A fragments: qa[kc][r] = Q[g + 8 (r % 2)][16 kc + 2t + 8 (r / 2) + {0, 1}]
  uint32_t qa[KC][4];
  const int64_t row0 = i0 + warp * 16 + g, row1 = row0 + 8;
  #pragma unroll
  for (int kc = 0; kc < KC; ++kc)
    #pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = r % 2 ? row1 : row0;
      const int c = 16 * kc + 2 * t + 8 * (r / 2);
      const bool in = i < Nq;
      qa[kc][r] = pack2(in && c < D ? qb[i * stride + c] : 0.0f, in && c + 1 < D ? qb[i * stride + c + 1] : 0.0f, kBf16);
    }

  float acc[DT][4];
  #pragma unroll
  for (int d = 0; d < DT; ++d)
    #pragma unroll
    for (int r = 0; r < 4; ++r) acc[d][r] = 0.0f;
  float mx[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0f, 0.0f};  // rows g and g + 8 (sum: this lane's part)

  const int64_t lastKey = causal ? (i0 + kRows < Nk ? i0 + kRows : Nk) : Nk;
  const int64_t tiles = (lastKey + Bc - 1) / Bc;
  loadTile<T, Dp>(Ks[0], kb, stride, 0, Nk, D, async);
  loadTile<T, Dp>(Vs[0], vb, stride, 0, Nk, D, async);
  cpAsyncCommit();

  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int cur = (int)(tile % 2);
    if (tile + 1 < tiles) {  // the next tile streams in while this one is multiplied
      loadTile<T, Dp>(Ks[cur ^ 1], kb, stride, (tile + 1) * Bc, Nk, D, async);
      loadTile<T, Dp>(Vs[cur ^ 1], vb, stride, (tile + 1) * Bc, Nk, D, async);
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      cpAsyncWait<0>();
    }
    __syncthreads();
    const T* K = Ks[cur];
    const T* V = Vs[cur];
    const int64_t j0 = tile * Bc;

    // S = Q K^T (16 x Bc per warp): ldmatrix x4 gives the B fragments of two n-tiles per k-chunk
    float s[NT][4];
    #pragma unroll
    for (int n = 0; n < NT; ++n)
      #pragma unroll
      for (int r = 0; r < 4; ++r) s[n][r] = 0.0f;
    #pragma unroll
    for (int kc = 0; kc < KC; ++kc)
      #pragma unroll
      for (int n = 0; n < NT; n += 2) {
        const int m = lane / 8;  // matrix m: keys 8 (n + m / 2) .., columns 16 kc + 8 (m % 2) ..
        uint32_t bk[4];
        ldmatrixX4(bk, K + (8 * (n + m / 2) + lane % 8) * Pitch + 16 * kc + 8 * (m % 2));
        const uint32_t b0[2] = {bk[0], bk[1]}, b1[2] = {bk[2], bk[3]};
        mma16816<T>(s[n], qa[kc], b0, s[n]);
        mma16816<T>(s[n + 1], qa[kc], b1, s[n + 1]);
      }

    // online softmax, rows g (r = 0, 1) and g + 8 (r = 2, 3); keys past Nk or after the query masked
    float tileMax[2] = {-INFINITY, -INFINITY};
    #pragma unroll
    for (int n = 0; n < NT; ++n)
      #pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t j = j0 + 8 * n + 2 * t + r % 2, i = r < 2 ? row0 : row1;
        const bool valid = j < Nk && (!causal || j <= i);
        s[n][r] = valid ? s[n][r] * scaleLog2 : -INFINITY;
        tileMax[r / 2] = fmaxf(tileMax[r / 2], s[n][r]);
      }
    float corr[2], base[2];
    #pragma unroll
    for (int x = 0; x < 2; ++x) {
      tileMax[x] = fmaxf(tileMax[x], __shfl_xor_sync(0xffffffffu, tileMax[x], 1));
      tileMax[x] = fmaxf(tileMax[x], __shfl_xor_sync(0xffffffffu, tileMax[x], 2));
      const float nmx = fmaxf(mx[x], tileMax[x]);
      base[x] = nmx == -INFINITY ? 0.0f : nmx;  // a row with nothing visible yet: every p is 0
      corr[x] = exp2f(mx[x] - base[x]);          // exp2(-inf) = 0 on the first visible tile
      mx[x] = nmx;
      sum[x] *= corr[x];
    }
    #pragma unroll
    for (int d = 0; d < DT; ++d)
      #pragma unroll
      for (int r = 0; r < 4; ++r) acc[d][r] *= corr[r / 2];
    #pragma unroll
    for (int n = 0; n < NT; ++n)
      #pragma unroll
      for (int r = 0; r < 4; ++r) {
        s[n][r] = exp2f(s[n][r] - base[r / 2]);
        sum[r / 2] += s[n][r];
      }

    // O += P V: P's accumulators of n-tiles 2c, 2c + 1 are the A fragment of key chunk c; V's B
    // fragments (k = key, n = column) by ldmatrix.trans, two column tiles per x4
    #pragma unroll
    for (int c = 0; c < NT / 2; ++c) {
      const uint32_t pa[4] = {pack2(s[2 * c][0], s[2 * c][1], kBf16), pack2(s[2 * c][2], s[2 * c][3], kBf16),
                              pack2(s[2 * c + 1][0], s[2 * c + 1][1], kBf16), pack2(s[2 * c + 1][2], s[2 * c + 1][3], kBf16)};
      #pragma unroll
      for (int d = 0; d < DT; d += 2) {
        const int m = lane / 8;  // matrix m: keys 16 c + 8 (m % 2) .., columns 8 (d + m / 2) ..
        uint32_t bv[4];
        ldmatrixX4Trans(bv, V + (16 * c + 8 * (m % 2) + lane % 8) * Pitch + 8 * (d + m / 2));
        const uint32_t b0[2] = {bv[0], bv[1]}, b1[2] = {bv[2], bv[3]};
        mma16816<T>(acc[d], pa, b0, acc[d]);
        mma16816<T>(acc[d + 1], pa, b1, acc[d + 1]);
      }
    }
    __syncthreads();  // this buffer is refilled by the tile after next
  }

  // the row sums across the lanes of a row's quad, then O / sum
  #pragma unroll
  for (int x = 0; x < 2; ++x) {
    sum[x] += __shfl_xor_sync(0xffffffffu, sum[x], 1);
    sum[x] += __shfl_xor_sync(0xffffffffu, sum[x], 2);
  }
  #pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t i = r < 2 ? row0 : row1;
    if (i >= Nq) continue;
    const float inv = sum[r / 2] > 0.0f ? 1.0f / sum[r / 2] : 0.0f;
    const ActOut orow = o + (b * Nq + i) * stride + h * D;
    #pragma unroll
    for (int d = 0; d < DT; ++d) {
      const int col = 8 * d + 2 * t + r % 2;
      if (col < D) orow[col] = acc[d][r] * inv;
    }
  }
}

template <class T, int Dp>
Status launch(const onestep_cuda_node& n, int64_t B, int64_t Nq, int64_t Nk, int64_t H, int D, float scale, bool causal, cudaStream_t s) {
  const onestep_cuda_tensor &q = n.inputs[0], &k = n.inputs[1], &v = n.inputs[2];
  const int type = std::is_same<T, __nv_bfloat16>::value ? ONESTEP_CUDA_BF16 : ONESTEP_CUDA_F16;
  // cp.async: K and V stored in the operand type, rows of whole 16-byte chunks, aligned bases
  const bool async = k.dtype == type && v.dtype == type && D % 8 == 0 && reinterpret_cast<uintptr_t>(k.data) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(v.data) % 16 == 0;
  const dim3 grid((unsigned)((Nq + kRows - 1) / kRows), (unsigned)(B * H));
  const auto kernel = flashMmaKernel<T, Dp>;
  ONESTEP_LAUNCH(kernel, grid, kWarps * 32, 0, s)(actIn(q), actIn(k), actIn(v), actOut(n.output), Nq, Nk, H, D, scale * 1.4426950408889634f, causal,
                                                  async);
  return launched("attention (flash mma)");
}

template <class T>
Status launchFor(const onestep_cuda_node& n, int64_t B, int64_t Nq, int64_t Nk, int64_t H, int D, float scale, bool causal, cudaStream_t s) {
  if (D <= 48) return launch<T, 48>(n, B, Nq, Nk, H, D, scale, causal, s);
  if (D <= 64) return launch<T, 64>(n, B, Nq, Nk, H, D, scale, causal, s);
  if (D <= 80) return launch<T, 80>(n, B, Nq, Nk, H, D, scale, causal, s);
  if (D <= 128) return launch<T, 128>(n, B, Nq, Nk, H, D, scale, causal, s);
  return launch<T, 160>(n, B, Nq, Nk, H, D, scale, causal, s);
}

}  // namespace

Status attentionMmaLimits(const onestep_cuda_node& n) {
  const onestep_cuda_tensor &q = n.inputs[0], &v = n.inputs[2];
  const int64_t B = q.shape[0], Nq = q.shape[1], H = attrsOf<onestep::AttentionAttrs>(n).heads;
  const int64_t D = q.shape[2] / H, Dv = v.shape[2] / H;
  if (ccMajor() < 8) return Status::fail("attention (flash mma): mma.sync m16n8k16 needs compute capability 8.0 or newer");
  if (D != Dv || D > kAttentionMmaMaxHead) return Status::fail("attention (flash mma): head sizes up to 160, the same for keys and values");
  if ((Nq + kRows - 1) / kRows > 0x7fffffff || B * H > 65535) return Status::fail("attention (flash mma): too many queries or heads for one grid");
  return Status::ok();
}

Status launchAttentionMma(const onestep_cuda_node& n, cudaStream_t s) {
  const Status fits = attentionMmaLimits(n);
  if (!fits.good()) return fits;
  const onestep_cuda_tensor &q = n.inputs[0], &k = n.inputs[1];
  const auto a = attrsOf<onestep::AttentionAttrs>(n);
  const int64_t B = q.shape[0], Nq = q.shape[1], Nk = k.shape[1], H = a.heads;
  const int D = (int)(q.shape[2] / H);
  if (B * H * Nq == 0) return Status::ok();
  return n.operand == ONESTEP_CUDA_BF16 ? launchFor<__nv_bfloat16>(n, B, Nq, Nk, H, D, (float)a.scale, a.causal, s)
                                        : launchFor<__half>(n, B, Nq, Nk, H, D, (float)a.scale, a.causal, s);
}

}  // namespace onestep_cuda
