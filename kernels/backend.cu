// Entry points of the CUDA backend library: build info, probe and device queries.
// Everything returns a status code and a message; nothing here exits or aborts.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "onestep_cuda_api.h"

namespace {

#define ONESTEP_STR2(...) #__VA_ARGS__
#define ONESTEP_STR(...) ONESTEP_STR2(__VA_ARGS__)

void writeError(char* err, size_t errlen, const std::string& msg) {
  if (!err || errlen == 0) return;
  std::snprintf(err, errlen, "%s", msg.c_str());
}

std::string describe(cudaError_t e) {
  switch (e) {
    case cudaErrorNoDevice:
      return "no CUDA device is present (the driver loaded but reports no GPU)";
    case cudaErrorInsufficientDriver:
      return "the NVIDIA driver is missing or older than this CUDA runtime (" ONESTEP_STR(CUDART_VERSION) ")";
    case cudaErrorNoKernelImageForDevice:
      return "this build has no kernels for the GPU's architecture (rebuild with ONESTEP_CUDA_ARCHS)";
    default:
      return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  }
}

__global__ void probeKernel(int* out) { *out = 42; }

const char* buildInfo() {
  return "cuda_runtime=" ONESTEP_STR(CUDART_VERSION)
#ifdef __CUDA_ARCH_LIST__
         " archs=" ONESTEP_STR(__CUDA_ARCH_LIST__)
#endif
      ;
}

int probe(int* deviceCount, char* err, size_t errlen) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (deviceCount) *deviceCount = (e == cudaSuccess) ? n : 0;
  if (e != cudaSuccess) {
    writeError(err, errlen, describe(e));
    cudaGetLastError();
    return 1;
  }
  if (n == 0) {
    writeError(err, errlen, describe(cudaErrorNoDevice));
    return 1;
  }
  int* d = nullptr;
  e = cudaMalloc(&d, sizeof(int));
  if (e == cudaSuccess) {
    probeKernel<<<1, 1>>>(d);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    int h = 0;
    if (e == cudaSuccess) e = cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost);
    if (e == cudaSuccess && h != 42) {
      cudaFree(d);
      writeError(err, errlen, "the probe kernel ran but returned a wrong value");
      return 1;
    }
    cudaFree(d);
  }
  if (e != cudaSuccess) {
    writeError(err, errlen, "probe kernel failed: " + describe(e));
    cudaGetLastError();
    return 1;
  }
  return 0;
}

int deviceInfo(int index, onestep_cuda_device_info* out, char* err, size_t errlen) {
  if (!out) {
    writeError(err, errlen, "null output");
    return 1;
  }
  std::memset(out, 0, sizeof(*out));
  cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, index);
  if (e != cudaSuccess) {
    writeError(err, errlen, describe(e));
    cudaGetLastError();
    return 1;
  }
  std::snprintf(out->name, sizeof(out->name), "%s", p.name);
  out->total_memory = p.totalGlobalMem;
  out->cc_major = p.major;
  out->cc_minor = p.minor;
  out->multiprocessors = p.multiProcessorCount;
  int prev = 0;
  if (cudaGetDevice(&prev) == cudaSuccess && cudaSetDevice(index) == cudaSuccess) {
    size_t freeBytes = 0, totalBytes = 0;
    if (cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess) out->free_memory = freeBytes;
    cudaSetDevice(prev);
  }
  cudaGetLastError();
  return 0;
}

const onestep_cuda_api kApi = {ONESTEP_CUDA_ABI, buildInfo, probe, deviceInfo};

}  // namespace

extern "C" const onestep_cuda_api* onestep_cuda_get_api(int abi_version) {
  return abi_version == ONESTEP_CUDA_ABI ? &kApi : nullptr;
}
