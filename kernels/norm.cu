// group_norm (NHWC, optional fused activation) and layer_norm, statistics in double as on the
// CPU (native/cpu/ops_norm.cc). group_norm: one block per (sample, group) computes the group's
// statistics and normalises it; layer_norm: one block per row.
#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kThreads = 256;

// Sums a pair over the block; every thread gets the totals.
__device__ void blockSum2(double& a, double& b) {
  __shared__ double sa[kThreads / 32], sb[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    a += __shfl_down_sync(0xffffffffu, a, o);
    b += __shfl_down_sync(0xffffffffu, b, o);
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sa[warp] = a;
    sb[warp] = b;
  }
  __syncthreads();
  if (warp == 0) {
    a = lane < (int)(blockDim.x / 32) ? sa[lane] : 0.0;
    b = lane < (int)(blockDim.x / 32) ? sb[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) {
      a += __shfl_down_sync(0xffffffffu, a, o);
      b += __shfl_down_sync(0xffffffffu, b, o);
    }
    if (lane == 0) {
      sa[0] = a;
      sb[0] = b;
    }
  }
  __syncthreads();
  a = sa[0];
  b = sb[0];
  __syncthreads();
}

__global__ void groupNormKernel(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                                float* __restrict__ y, int64_t P, int64_t C, int64_t cpg, double eps, int act) {
  const int64_t g = blockIdx.x, b = blockIdx.y;
  const int64_t count = P * cpg;
  const float* xs = x + b * P * C + g * cpg;
  float* ys = y + b * P * C + g * cpg;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double v = xs[(i / cpg) * C + i % cpg];
    s1 += v;
    s2 += v * v;
  }
  blockSum2(s1, s2);
  const double mean = s1 / (double)count;
  double var = s2 / (double)count - mean * mean;
  if (var < 0.0) var = 0.0;
  const double rstd = 1.0 / sqrt(var + eps);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t c = g * cpg + i % cpg;
    const float scale = (float)(rstd * gamma[c]);
    const float shift = (float)(beta[c] - mean * rstd * gamma[c]);
    const int64_t off = (i / cpg) * C + i % cpg;
    ys[off] = applyAct(act, xs[off] * scale + shift);
  }
}

__global__ void layerNormKernel(const float* __restrict__ x, const float* __restrict__ gamma, const float* __restrict__ beta,
                                float* __restrict__ y, int64_t C, double eps) {
  const float* xr = x + blockIdx.x * C;
  float* yr = y + blockIdx.x * C;
  double s1 = 0.0, unused = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s1 += xr[c];
  blockSum2(s1, unused);
  const double mean = s1 / (double)C;
  double s2 = 0.0;
  unused = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const double d = xr[c] - mean;
    s2 += d * d;
  }
  blockSum2(s2, unused);
  const double rstd = 1.0 / sqrt(s2 / (double)C + eps);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = (float)((xr[c] - mean) * rstd) * gamma[c] + beta[c];
}

}  // namespace

Status groupNormLimits(const onestep_cuda_node& n) {
  if (attrsOf<onestep::GroupNormAttrs>(n).groups > 65535 || n.inputs[0].shape[0] > 65535)
    return Status::fail("group_norm: too many groups or samples for one grid");
  return Status::ok();
}

Status launchGroupNorm(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  const auto a = attrsOf<onestep::GroupNormAttrs>(n);
  const int64_t B = x.shape[0], C = lastDim(x), G = a.groups;
  if (B == 0 || C == 0) return Status::ok();
  const Status fits = groupNormLimits(n);
  if (!fits.good()) return fits;
  const int64_t P = numel(x) / (B * C);
  ONESTEP_LAUNCH(groupNormKernel, dim3((unsigned)G, (unsigned)B), kThreads, 0, s)(static_cast<const float*>(x.data), static_cast<const float*>(n.inputs[1].data),
                                                                     static_cast<const float*>(n.inputs[2].data), static_cast<float*>(n.output.data),
                                                                     P, C, C / G, a.eps, (int)a.act);
  return launched("group_norm");
}

Status layerNormLimits(const onestep_cuda_node& n) {
  const int64_t C = lastDim(n.inputs[0]);
  if (C && numel(n.inputs[0]) / C > 0x7fffffff) return Status::fail("layer_norm: too many rows for one grid");
  return Status::ok();
}

Status launchLayerNorm(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  const int64_t C = lastDim(x), rows = C ? numel(x) / C : 0;
  if (rows == 0) return Status::ok();
  const Status fits = layerNormLimits(n);
  if (!fits.good()) return fits;
  ONESTEP_LAUNCH(layerNormKernel, (unsigned)rows, kThreads, 0, s)(static_cast<const float*>(x.data), static_cast<const float*>(n.inputs[1].data),
                                                      static_cast<const float*>(n.inputs[2].data), static_cast<float*>(n.output.data), C,
                                                      attrsOf<onestep::LayerNormAttrs>(n).eps);
  return launched("layer_norm");
}

}  // namespace onestep_cuda
