// Element type conversion on the device (F32 / F16 / BF16), used when weights are uploaded:
// they arrive in the checkpoint's dtype and are kept as the kernels want them.
#include "ops.cuh"

namespace onestep_cuda {

namespace {

__global__ void convertKernel(void* __restrict__ dst, int dstDtype, const void* __restrict__ src, int srcDtype, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = loadAny(src, srcDtype, i);
    switch (dstDtype) {
      case ONESTEP_CUDA_F16: static_cast<__half*>(dst)[i] = __float2half_rn(v); break;
      case ONESTEP_CUDA_BF16: static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(v); break;
      default: static_cast<float*>(dst)[i] = v; break;
    }
  }
}

bool isFloat(int d) { return d == ONESTEP_CUDA_F32 || d == ONESTEP_CUDA_F16 || d == ONESTEP_CUDA_BF16; }

}  // namespace

Status launchConvert(void* dst, int dstDtype, const void* src, int srcDtype, int64_t n, cudaStream_t s) {
  if (!isFloat(dstDtype) || !isFloat(srcDtype)) return Status::fail("convert: only F32, F16 and BF16");
  if (n <= 0) return Status::ok();
  ONESTEP_LAUNCH(convertKernel, gridFor(n, 256), 256, 0, s)(dst, dstDtype, src, srcDtype, n);
  return launched("convert");
}

}  // namespace onestep_cuda
