// group_norm (NHWC, optional fused activation) and layer_norm, statistics in double as on the
// CPU (native/cpu/ops_norm.cc), whatever the activations' storage (F32 or the graph's 16-bit type).
// group_norm: a split reduction over the GPU, then one pass that normalises (below); layer_norm:
// one block per row.
#include <algorithm>

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

// group_norm: three kernels, so that a whole GPU works on a batch-1 image (one block per (sample,
// group) would keep 32 blocks busy):
//  1. partial sums: blocks over (chunk of pixels, group, sample), each summing x and x^2 of its
//     chunk in double into the node's workspace;
//  2. per (sample, channel), the group's mean and 1/std from the partials (double, as on the CPU),
//     folded with gamma and beta into one scale and shift;
//  3. y = act(x * scale + shift) over every element, 16 bytes per load where the channel count and
//     the storage allow (four float32 or eight 16-bit channels).
constexpr int64_t kGnChunk = 64;       // pixels per partial-sum block
constexpr int64_t kGnMaxChunks = 256;  // chunks per (sample, group) at the most

struct GnShape {
  int64_t B, P, C, G, cpg, chunks, chunkPixels;
  uint64_t partialBytes() const { return scratchBytes((uint64_t)B * G * chunks * 2 * sizeof(double)); }
  uint64_t total() const { return partialBytes() + scratchBytes((uint64_t)B * C * 2 * sizeof(float)); }
};

GnShape gnShapeOf(const onestep_cuda_node& n) {
  const onestep_cuda_tensor& x = n.inputs[0];
  GnShape s;
  s.B = x.shape[0], s.C = lastDim(x), s.G = attrsOf<onestep::GroupNormAttrs>(n).groups;
  s.P = s.B && s.C ? numel(x) / (s.B * s.C) : 0;
  s.cpg = s.G ? s.C / s.G : 0;
  s.chunks = std::min<int64_t>(kGnMaxChunks, std::max<int64_t>(1, (s.P + kGnChunk - 1) / kGnChunk));
  s.chunkPixels = (s.P + s.chunks - 1) / s.chunks;
  return s;
}

__global__ void groupNormPartialKernel(ActIn x, double* __restrict__ partial, int64_t P, int64_t C, int64_t cpg,
                                       int64_t chunkPixels) {
  const int64_t chunk = blockIdx.x, g = blockIdx.y, b = blockIdx.z, chunks = gridDim.x, G = gridDim.y;
  const int64_t p0 = chunk * chunkPixels, p1 = p0 + chunkPixels < P ? p0 + chunkPixels : P;
  const ActIn xs = x + b * P * C + g * cpg;
  double s1 = 0.0, s2 = 0.0;
  const int64_t count = (p1 > p0 ? p1 - p0 : 0) * cpg;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const double v = xs[(p0 + i / cpg) * C + i % cpg];
    s1 += v;
    s2 += v * v;
  }
  blockSum2(s1, s2);
  if (threadIdx.x == 0) {
    double* out = partial + ((b * G + g) * chunks + chunk) * 2;
    out[0] = s1;
    out[1] = s2;
  }
}

__global__ void groupNormScaleKernel(const double* __restrict__ partial, ActIn gamma, ActIn beta,
                                     float* __restrict__ scaleShift, int64_t B, int64_t P, int64_t C, int64_t G, int64_t cpg, int64_t chunks,
                                     double eps) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;  // over B * C
  if (i >= B * C) return;
  const int64_t b = i / C, c = i % C, g = c / cpg;
  const double* p = partial + (b * G + g) * chunks * 2;
  double s1 = 0.0, s2 = 0.0;
  for (int64_t k = 0; k < chunks; ++k) s1 += p[2 * k], s2 += p[2 * k + 1];
  const double count = (double)(P * cpg);
  const double mean = s1 / count;
  double var = s2 / count - mean * mean;
  if (var < 0.0) var = 0.0;
  const double rstd = 1.0 / sqrt(var + eps);
  scaleShift[2 * i] = (float)(rstd * gamma[c]);
  scaleShift[2 * i + 1] = (float)(beta[c] - mean * rstd * gamma[c]);
}

// 16 bytes per thread and step: T is float (four channels) or the 16-bit type (eight)
template <class T>
__global__ void groupNormApplyVecKernel(const T* __restrict__ x, const float* __restrict__ scaleShift, T* __restrict__ y, int64_t n, int64_t P,
                                        int64_t C, int act) {
  constexpr int kVec = 16 / sizeof(T);
  for (int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; v < n / kVec; v += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = v * kVec, c = i % C, b = i / (P * C);
    const float* ss = scaleShift + (b * C + c) * 2;
    union Pack {  // the 16 bytes as elements (a union: no aliasing through casted pointers)
      uint4 raw;
      T e[kVec];
    } in, out;
    in.raw = *reinterpret_cast<const uint4*>(x + i);
    for (int k = 0; k < kVec; ++k) {
      const float r = applyAct(act, toFloat(in.e[k]) * ss[2 * k] + ss[2 * k + 1]);
      if constexpr (sizeof(T) == 4) out.e[k] = r;
      else out.e[k] = toOperand<T>(r);
    }
    *reinterpret_cast<uint4*>(y + i) = out.raw;
  }
}

// any storage pair, one element per thread and step
__global__ void groupNormApplyKernel(ActIn x, const float* __restrict__ scaleShift, ActOut y, int64_t n, int64_t P, int64_t C, int act) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, b = i / (P * C);
    const float* ss = scaleShift + (b * C + c) * 2;
    y[i] = applyAct(act, x[i] * ss[0] + ss[1]);
  }
}

__global__ void layerNormKernel(ActIn x, ActIn gamma, ActIn beta, ActOut y, int64_t C, double eps) {
  const ActIn xr = x + blockIdx.x * C;
  const ActOut yr = y + blockIdx.x * C;
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
  const GnShape g = gnShapeOf(n);
  if (g.B * g.C > 0x7fffffffLL * kThreads) return Status::fail("group_norm: too many channels for one grid");
  return Status::ok();
}

Status planGroupNorm(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  std::memset(out, 0, sizeof(*out));
  out->workspace_bytes = gnShapeOf(n).total();
  std::snprintf(out->name, sizeof(out->name), "split reduction");
  return Status::ok();
}

Status launchGroupNorm(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor& x = n.inputs[0];
  const auto a = attrsOf<onestep::GroupNormAttrs>(n);
  const GnShape g = gnShapeOf(n);
  if (g.B == 0 || g.C == 0 || g.P == 0) return Status::ok();
  const Status fits = groupNormLimits(n);
  if (!fits.good()) return fits;
  if (!n.workspace || n.workspace_bytes < g.total()) return Status::fail("group_norm: the node's workspace is smaller than planned");
  double* partial = static_cast<double*>(n.workspace);
  float* scaleShift = reinterpret_cast<float*>(static_cast<uint8_t*>(n.workspace) + g.partialBytes());
  const ActIn xp = actIn(x);
  const ActOut yp = actOut(n.output);
  ONESTEP_LAUNCH(groupNormPartialKernel, dim3((unsigned)g.chunks, (unsigned)g.G, (unsigned)g.B), kThreads, 0, s)(xp, partial, g.P, g.C, g.cpg,
                                                                                                                g.chunkPixels);
  Status st = launched("group_norm (partial sums)");
  if (!st.good()) return st;
  ONESTEP_LAUNCH(groupNormScaleKernel, blocksFor(g.B * g.C, kThreads), kThreads, 0, s)(
      partial, actIn(n.inputs[1]), actIn(n.inputs[2]), scaleShift, g.B, g.P, g.C, g.G, g.cpg,
      g.chunks, a.eps);
  st = launched("group_norm (statistics)");
  if (!st.good()) return st;
  const int64_t total = g.B * g.P * g.C;
  const int per = (int)(16 / floatBytes(x.dtype));  // elements per 16 bytes
  const bool vec = x.dtype == n.output.dtype && g.C % per == 0 && reinterpret_cast<uintptr_t>(x.data) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(n.output.data) % 16 == 0;
  const unsigned grid = gridFor(vec ? total / per : total, kThreads);
  if (vec && x.dtype == ONESTEP_CUDA_F16)
    ONESTEP_LAUNCH(groupNormApplyVecKernel<__half>, grid, kThreads, 0, s)(static_cast<const __half*>(x.data), scaleShift,
                                                                          static_cast<__half*>(n.output.data), total, g.P, g.C, (int)a.act);
  else if (vec && x.dtype == ONESTEP_CUDA_BF16)
    ONESTEP_LAUNCH(groupNormApplyVecKernel<__nv_bfloat16>, grid, kThreads, 0, s)(static_cast<const __nv_bfloat16*>(x.data), scaleShift,
                                                                                 static_cast<__nv_bfloat16*>(n.output.data), total, g.P, g.C, (int)a.act);
  else if (vec)
    ONESTEP_LAUNCH(groupNormApplyVecKernel<float>, grid, kThreads, 0, s)(static_cast<const float*>(x.data), scaleShift,
                                                                         static_cast<float*>(n.output.data), total, g.P, g.C, (int)a.act);
  else
    ONESTEP_LAUNCH(groupNormApplyKernel, grid, kThreads, 0, s)(xp, scaleShift, yp, total, g.P, g.C, (int)a.act);
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
  ONESTEP_LAUNCH(layerNormKernel, (unsigned)rows, kThreads, 0, s)(actIn(x), actIn(n.inputs[1]), actIn(n.inputs[2]), actOut(n.output), C,
                                                      attrsOf<onestep::LayerNormAttrs>(n).eps);
  return launched("layer_norm");
}

}  // namespace onestep_cuda
