// Data movement (concat, nearest upsample, permute, slice, average pooling), table lookups
// (embedding, select_rows) and the sinusoidal timestep embedding, as native/cpu/ops_shape.cc
// computes them. One thread per output element; activations as stored (ActIn / ActOut).
#include <cmath>

#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kThreads = 256;

#define GRID_LOOP(i, n) for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void concatKernel(ActIn a, ActIn b, ActOut y, int64_t rows, int64_t ca,
                             int64_t cb) {
  const int64_t c = ca + cb;
  GRID_LOOP(i, rows * c) {
    const int64_t r = i / c, j = i % c;
    y[i] = j < ca ? a[r * ca + j] : b[r * cb + (j - ca)];
  }
}

// torch's nearest_idx (F.interpolate(mode='nearest', size=...)): the same index, the scale in float
__device__ inline int64_t nearestSource(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = (float)in / (float)out;
  const int64_t s = (int64_t)floorf((float)dst * scale);
  return s < in - 1 ? s : in - 1;
}

__global__ void upsampleKernel(ActIn x, ActOut y, int64_t B, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
  GRID_LOOP(i, B * Ho * Wo * C) {
    const int64_t c = i % C, ox = (i / C) % Wo, oy = (i / (C * Wo)) % Ho, b = i / (C * Wo * Ho);
    y[i] = x[((b * H + nearestSource(oy, H, Ho)) * W + nearestSource(ox, W, Wo)) * C + c];
  }
}

struct Perm {
  int rank;
  int64_t outShape[ONESTEP_CUDA_MAX_RANK];
  int64_t inStride[ONESTEP_CUDA_MAX_RANK];  // the input stride of each output dim
};

__global__ void permuteKernel(ActIn x, ActOut y, int64_t n, Perm p) {
  GRID_LOOP(i, n) {
    int64_t rem = i, off = 0;
    for (int d = p.rank - 1; d >= 0; --d) {
      off += (rem % p.outShape[d]) * p.inStride[d];
      rem /= p.outShape[d];
    }
    y[i] = x[off];
  }
}

__global__ void sliceKernel(ActIn x, ActOut y, int64_t outer, int64_t axisLen, int64_t start, int64_t len,
                            int64_t inner) {
  GRID_LOOP(i, outer * len * inner) {
    const int64_t k = i % inner, a = (i / inner) % len, o = i / (inner * len);
    y[i] = x[(o * axisLen + start + a) * inner + k];
  }
}

__global__ void avgPoolKernel(ActIn x, ActOut y, int64_t B, int64_t H, int64_t W, int64_t C, int64_t Ho,
                              int64_t Wo, int64_t k) {
  const float inv = 1.0f / (float)(k * k);
  GRID_LOOP(i, B * Ho * Wo * C) {
    const int64_t c = i % C, ox = (i / C) % Wo, oy = (i / (C * Wo)) % Ho, b = i / (C * Wo * Ho);
    float acc = 0.0f;
    for (int64_t dy = 0; dy < k; ++dy)
      for (int64_t dx = 0; dx < k; ++dx) acc += x[((b * H + oy * k + dy) * W + ox * k + dx) * C + c];
    y[i] = acc * inv;
  }
}

// Ids outside the table were refused on the host (the executor checks index inputs); a stray one
// here reads row 0 rather than out of bounds.
__global__ void embeddingKernel(const int64_t* __restrict__ ids, const void* __restrict__ table, int dtype, ActOut y, int64_t n,
                                int64_t V, int64_t C) {
  GRID_LOOP(i, n * C) {
    int64_t id = ids[i / C];
    if (id < 0 || id >= V) id = 0;
    y[i] = loadAny(table, dtype, id * C + i % C);
  }
}

__global__ void selectRowsKernel(ActIn x, const int64_t* __restrict__ idx, ActOut y, int64_t B, int64_t L,
                                 int64_t C) {
  GRID_LOOP(i, B * C) {
    const int64_t b = i / C;
    int64_t r = idx[b];
    if (r < 0 || r >= L) r = 0;
    y[i] = x[(b * L + r) * C + i % C];
  }
}

__global__ void timestepEmbeddingKernel(const float* __restrict__ t, ActOut y, int64_t B, int64_t dim, bool flip, float shift,
                                        float scale, bool guidanceForm) {
  const int64_t half = dim / 2;
  const float ln = logf(10000.0f);
  GRID_LOOP(i, B * half) {
    const int64_t b = i / half, k = i % half;
    const float exponent = guidanceForm ? (float)k * -(ln / ((float)half - shift)) : (-ln * (float)k) / ((float)half - shift);
    const float arg = scale * (t[b] * expf(exponent));
    const ActOut row = y + b * dim;
    row[flip ? half + k : k] = sinf(arg);
    row[flip ? k : half + k] = cosf(arg);
  }
  // an odd dim leaves its last column as the CPU does (shape rules only allow even dims)
}

template <typename K, typename... A>
Status launch(const char* what, int64_t n, K kernel, cudaStream_t s, A... args) {
  if (n == 0) return Status::ok();
  ONESTEP_LAUNCH(kernel, gridFor(n, kThreads), kThreads, 0, s)(args...);
  return launched(what);
}

}  // namespace

Status launchConcat(const onestep_cuda_node& n, cudaStream_t s) {
  const int64_t ca = lastDim(n.inputs[0]), cb = lastDim(n.inputs[1]);
  const int64_t rows = numel(n.output) / (ca + cb > 0 ? ca + cb : 1);
  return launch("concat", numel(n.output), concatKernel, s, actIn(n.inputs[0]), actIn(n.inputs[1]), actOut(n.output), rows, ca, cb);
}

Status launchUpsample(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  return launch("upsample", numel(n.output), upsampleKernel, s, actIn(x), actOut(n.output),
                x.shape[0], x.shape[1], x.shape[2], x.shape[3], n.output.shape[1], n.output.shape[2]);
}

Status launchPermute(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  Perm p{};
  p.rank = x.rank;
  int64_t inStride[ONESTEP_CUDA_MAX_RANK];
  int64_t st = 1;
  for (int d = x.rank - 1; d >= 0; --d) {
    inStride[d] = st;
    st *= x.shape[d];
  }
  const auto a = attrsOf<onestep::PermuteAttrs>(n);
  for (int d = 0; d < x.rank; ++d) {
    const int src = (int)onestep::permuteAxis(a, d);
    p.outShape[d] = x.shape[src];
    p.inStride[d] = inStride[src];
  }
  return launch("permute", numel(n.output), permuteKernel, s, actIn(x), actOut(n.output),
                numel(n.output), p);
}

Status launchSlice(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  const auto a = attrsOf<onestep::SliceAttrs>(n);
  const int axis = (int)a.axis;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape[d];
  for (int d = axis + 1; d < x.rank; ++d) inner *= x.shape[d];
  return launch("slice", numel(n.output), sliceKernel, s, actIn(x), actOut(n.output), outer,
                x.shape[axis], a.start, a.length, inner);
}

Status launchAvgPool(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &x = n.inputs[0], &o = n.output;
  return launch("avg_pool", numel(o), avgPoolKernel, s, actIn(x), actOut(o), x.shape[0],
                x.shape[1], x.shape[2], x.shape[3], o.shape[1], o.shape[2], attrsOf<onestep::AvgPoolAttrs>(n).k);
}

Status launchEmbedding(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &ids = n.inputs[0], &table = n.inputs[1];
  return launch("embedding", numel(n.output), embeddingKernel, s, static_cast<const int64_t*>(ids.data), static_cast<const void*>(table.data),
                (int)table.dtype, actOut(n.output), numel(ids), table.shape[0], table.shape[1]);
}

Status launchSelectRows(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &x = n.inputs[0], &idx = n.inputs[1];
  return launch("select_rows", numel(n.output), selectRowsKernel, s, actIn(x), static_cast<const int64_t*>(idx.data), actOut(n.output), x.shape[0], x.shape[1], x.shape[2]);
}

// The timesteps are read as float32 (their embedding is computed in fp32, as in the reference).
Status timestepEmbeddingLimits(const onestep_cuda_node& n) {
  if (n.inputs[0].dtype != ONESTEP_CUDA_F32) return Status::fail("timestep_embedding: the timesteps are float32");
  return Status::ok();
}

Status launchTimestepEmbedding(const onestep_cuda_node& n, cudaStream_t s) {
  const Status fits = timestepEmbeddingLimits(n);
  if (!fits.good()) return fits;
  const auto a = attrsOf<onestep::TimestepEmbeddingAttrs>(n);
  const int64_t B = n.inputs[0].shape[0], dim = a.dim;
  return launch("timestep_embedding", B * (dim / 2), timestepEmbeddingKernel, s, static_cast<const float*>(n.inputs[0].data), actOut(n.output), B, dim, a.flip_sin_to_cos, (float)a.shift, (float)a.scale, a.form == 1);
}

}  // namespace onestep_cuda
