// add / mul with broadcasting, unary (affine + activation + clamp), geglu, and the fused
// scheduler step: the formulas of native/cpu/ops_elementwise.cc, one thread per element, in fp32
// whatever the activations' storage (ActIn / ActOut: F32 or the graph's 16-bit type).
#include <cmath>

#include "ops.cuh"

namespace onestep_cuda {

namespace {

constexpr int kThreads = 256;

struct Broadcast {
  int rank;
  int64_t shape[ONESTEP_CUDA_MAX_RANK];    // a's (= the output's) shape
  int64_t bstride[ONESTEP_CUDA_MAX_RANK];  // b's stride along each of a's dims, 0 where broadcast
};

template <bool kMul>
__global__ void binaryKernel(ActIn a, ActIn b, ActOut y, int64_t n,
                             Broadcast g) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rem = i, boff = 0;
    for (int d = g.rank - 1; d >= 0; --d) {
      boff += (rem % g.shape[d]) * g.bstride[d];
      rem /= g.shape[d];
    }
    y[i] = kMul ? a[i] * b[boff] : a[i] + b[boff];
  }
}

template <bool kMul>
Status binary(const onestep_cuda_node& n, cudaStream_t s) {
  const onestep_cuda_tensor &ta = n.inputs[0], &tb = n.inputs[1];
  Broadcast g{};
  g.rank = ta.rank;
  int64_t st = 1;
  for (int d = ta.rank - 1; d >= 0; --d) {
    const int bd = d - (ta.rank - tb.rank);
    const int64_t bs = bd >= 0 ? tb.shape[bd] : 1;
    g.shape[d] = ta.shape[d];
    g.bstride[d] = bs == 1 ? 0 : st;
    st *= bs;
  }
  const int64_t count = numel(ta);
  if (count == 0) return Status::ok();
  ONESTEP_LAUNCH(binaryKernel<kMul>, gridFor(count, kThreads), kThreads, 0, s)(actIn(ta), actIn(tb), actOut(n.output), count, g);
  return launched(kMul ? "mul" : "add");
}

__global__ void unaryKernel(ActIn x, ActOut y, int64_t n, int act, float a, float b, float c, float d,
                            bool clampLo, float lo, bool clampHi, float hi) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = c * applyAct(act, a * x[i] + b) + d;
    if (clampLo && v < lo) v = lo;  // comparisons, not fminf/fmaxf: NaN stays NaN, as on the CPU
    if (clampHi && v > hi) v = hi;
    y[i] = v;
  }
}

__global__ void gegluKernel(ActIn x, ActOut y, int64_t rows, int64_t C) {
  const int64_t n = rows * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C;
    const ActIn xr = x + r * 2 * C;
    y[i] = xr[c] * applyAct(kGelu, xr[C + c]);
  }
}

__global__ void schedulerStepKernel(const float* __restrict__ x, ActIn o, const float* __restrict__ coeffs, const float* __restrict__ noise,
                                    float* __restrict__ y, int64_t n, bool cfg, bool denoised) {
  const float c0 = coeffs[0], c1 = coeffs[1], c2 = coeffs[2], c3 = coeffs[3], c4 = coeffs[4], c5 = coeffs[5], c6 = coeffs[6],
              c7 = coeffs[7];
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float e = cfg ? c6 * o[i] + c7 * o[n + i] : o[i];
    const float d = c0 * x[i] + c1 * e;
    if (denoised) {
      y[i] = d;
    } else {
      float p = c2 * x[i] + c3 * e + c4 * d;
      if (noise) p += c5 * noise[i];
      y[i] = p;
    }
  }
}

}  // namespace

Status launchAdd(const onestep_cuda_node& n, cudaStream_t s) { return binary<false>(n, s); }
Status launchMul(const onestep_cuda_node& n, cudaStream_t s) { return binary<true>(n, s); }

Status launchUnary(const onestep_cuda_node& n, cudaStream_t s) {
  const auto a = attrsOf<onestep::UnaryAttrs>(n);
  const int64_t count = numel(n.output);
  if (count == 0) return Status::ok();
  const bool lo = std::isfinite(a.lo), hi = std::isfinite(a.hi);
  ONESTEP_LAUNCH(unaryKernel, gridFor(count, kThreads), kThreads, 0, s)(actIn(n.inputs[0]), actOut(n.output), count, (int)a.act, (float)a.a, (float)a.b, (float)a.c, (float)a.d, lo,
                                                           lo ? (float)a.lo : 0.0f, hi, hi ? (float)a.hi : 0.0f);
  return launched("unary");
}

Status launchGeglu(const onestep_cuda_node& n, cudaStream_t s) {
  const int64_t C = lastDim(n.output), count = numel(n.output);
  if (count == 0) return Status::ok();
  ONESTEP_LAUNCH(gegluKernel, gridFor(count, kThreads), kThreads, 0, s)(actIn(n.inputs[0]), actOut(n.output), count / C, C);
  return launched("geglu");
}

// The latents, the coefficients, the noise and the result stay float32, as in the reference (the
// model output may be 16-bit).
Status schedulerStepLimits(const onestep_cuda_node& n) {
  for (int i : {0, 2, 3})
    if (i < n.n_inputs && n.inputs[i].dtype != ONESTEP_CUDA_F32)     return Status::fail("scheduler_step: its latents, coefficients and noise are float32");
  if (n.output.dtype != ONESTEP_CUDA_F32) return Status::fail("scheduler_step: its result is float32");
  return Status::ok();
}

Status launchSchedulerStep(const onestep_cuda_node& n, cudaStream_t s) {
  const Status fits = schedulerStepLimits(n);
  if (!fits.good()) return fits;
  const int64_t count = numel(n.output);
  const int64_t outCount = numel(n.inputs[1]);
  if (count == 0) return Status::ok();
  const float* noise = present(n, 3) ? static_cast<const float*>(n.inputs[3].data) : nullptr;
  ONESTEP_LAUNCH(schedulerStepKernel, gridFor(count, kThreads), kThreads, 0, s)(
      static_cast<const float*>(n.inputs[0].data), actIn(n.inputs[1]), static_cast<const float*>(n.inputs[2].data),
      noise, static_cast<float*>(n.output.data), count, outCount == 2 * count,
      attrsOf<onestep::SchedulerStepAttrs>(n).select == 1);
  return launched("scheduler_step");
}

}  // namespace onestep_cuda
