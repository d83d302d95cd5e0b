// LoRA fusion on the device (docs/LORA.md): out = base + sum_p factor_p * up_p @ down_p, accumulated
// in float32 and rounded once to out's type. Rank-r updates of a weight's rows: each block owns a
// 64 x 64 tile of the weight, 256 threads with 4 x 4 outputs each; up (scaled by its factor) and
// down arrive 16 ranks at a time through shared memory. A conv kernel on the device is relaid out
// as [Co, kh, kw, Ci] while down keeps the checkpoint's [r, Ci, kh, kw]: the tile's columns are
// gathered from down in that order.
#include <algorithm>
#include <vector>

#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kTile = 64;  // weight rows and columns per block
constexpr int kRanks = 16;  // ranks per shared-memory step

struct LoraPartDev {
  ActIn up;    // [N, r]
  ActIn down;  // [r, K]
  int64_t rank;
  float factor;
};

constexpr int kMaxParts = ONESTEP_CUDA_MAX_LORA_PARTS;  // adapters on one weight (kernel parameters: 48 x 48 bytes)

struct LoraParts {
  LoraPartDev p[kMaxParts];
  int n;
};

// Column j of a device row -> column of down (identity unless the rows are a relaid-out conv kernel).
__device__ __forceinline__ int64_t downColumn(int64_t j, int64_t cin, int64_t khw) {
  if (cin <= 0) return j;
  const int64_t s = j / cin, c = j - s * cin;
  return c * khw + s;
}

__global__ void __launch_bounds__(256) loraFuseKernel(ActOut out, ActIn base, LoraParts parts, int64_t N, int64_t K, int64_t cin) {
  __shared__ float us[kRanks][kTile + 1];  // us[r][row]: up's tile, transposed, times the factor
  __shared__ float ds[kRanks][kTile];      // ds[r][col]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t row0 = (int64_t)blockIdx.y * kTile, col0 = (int64_t)blockIdx.x * kTile;
  const int64_t khw = cin > 0 ? K / cin : 1;
  float acc[4][4] = {};
  for (int pi = 0; pi < parts.n; ++pi) {
    const LoraPartDev& p = parts.p[pi];
    for (int64_t r0 = 0; r0 < p.rank; r0 += kRanks) {
      // 64 x 16 of up and 16 x 64 of down: 4 elements of each per thread
      for (int e = threadIdx.x; e < kTile * kRanks; e += 256) {
        const int r = e % kRanks, row = e / kRanks;
        const int64_t gr = row0 + row, rr = r0 + r;
        us[r][row] = gr < N && rr < p.rank ? p.factor * p.up[gr * p.rank + rr] : 0.f;
        const int col = e % kTile, r2 = e / kTile;
        const int64_t gc = col0 + col, rr2 = r0 + r2;
        ds[r2][col] = gc < K && rr2 < p.rank ? p.down[rr2 * K + downColumn(gc, cin, khw)] : 0.f;
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kRanks; ++r) {
        float a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = us[r][ty + 16 * i], b[i] = ds[r][tx + 16 * i];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
      }
      __syncthreads();
    }
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t row = row0 + ty + 16 * i;
    if (row >= N) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t col = col0 + tx + 16 * j;
      if (col < K) out[row * K + col] = base[row * K + col] + acc[i][j];
    }
  }
}

bool isFloat(int d) { return d == ONESTEP_CUDA_F32 || d == ONESTEP_CUDA_F16 || d == ONESTEP_CUDA_BF16; }

}  // namespace

Status launchLoraFuse(const onestep_cuda_tensor& out, const onestep_cuda_tensor& base, int nParts, const onestep_cuda_tensor* ups,
                      const onestep_cuda_tensor* downs, const float* factors, int64_t cin, cudaStream_t s) {
  if (!out.data || !base.data) return Status::fail("lora_fuse: no output or base");
  if (!isFloat(out.dtype) || !isFloat(base.dtype)) return Status::fail("lora_fuse: the weight must be F32, F16 or BF16");
  if (out.rank < 2 || base.rank != out.rank) return Status::fail("lora_fuse: the weight must have 2 dims or more, as its base");
  for (int d = 0; d < out.rank; ++d)
    if (out.shape[d] != base.shape[d]) return Status::fail("lora_fuse: the base's shape differs from the output's");
  const int64_t N = out.shape[0];
  const int64_t K = N > 0 ? numel(out) / N : 0;
  if (cin < 0 || (cin > 0 && (out.rank != 4 || out.shape[3] != cin)))
    return Status::fail("lora_fuse: a relaid-out conv kernel must be [Co, kh, kw, Ci] with Ci = conv_cin");
  if (nParts < 0 || (nParts > 0 && (!ups || !downs || !factors))) return Status::fail("lora_fuse: bad parts");
  if (nParts > kMaxParts) return Status::fail("lora_fuse: " + std::to_string(nParts) + " adapters on one weight (at most " + std::to_string(kMaxParts) + ")");
  if (N == 0 || K == 0) return Status::ok();
  std::vector<LoraPartDev> all;
  for (int i = 0; i < nParts; ++i) {
    const onestep_cuda_tensor &u = ups[i], &d = downs[i];
    if (!u.data || !d.data || !isFloat(u.dtype) || !isFloat(d.dtype)) return Status::fail("lora_fuse: up and down must be float tensors on the device");
    const int64_t r = numel(u) / N;
    if (r <= 0 || numel(u) != r * N || numel(d) != r * K)
      return Status::fail("lora_fuse: part " + std::to_string(i) + ": up must be [N, r] and down [r, K] for the weight's N and K");
    all.push_back(LoraPartDev{actIn(u), actIn(d), r, factors[i]});
  }
  const dim3 grid((unsigned)((K + kTile - 1) / kTile), (unsigned)((N + kTile - 1) / kTile));
  if (grid.y > 65535) return Status::fail("lora_fuse: too many rows");
  LoraParts batch{};
  batch.n = (int)all.size();
  for (int i = 0; i < batch.n; ++i) batch.p[i] = all[i];
  ONESTEP_LAUNCH(loraFuseKernel, grid, 256, 0, s)(actOut(out), actIn(base), batch, N, K, cin);
  return launched("lora_fuse");
}

}  // namespace onestep_cuda
