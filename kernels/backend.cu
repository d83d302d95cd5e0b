// Entry points of the CUDA backend library: build info, probe, device queries, memory, streams,
// nodes and CUDA graphs. Everything returns a status code and a message; nothing exits or aborts.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "onestep_cuda_api.h"
#include "ops.cuh"

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
    ONESTEP_LAUNCH(probeKernel, 1, 1)(d);
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

int report(const onestep_cuda::Status& st, char* err, size_t errlen) {
  if (st.good()) return 0;
  writeError(err, errlen, st.message);
  return 1;
}

int deviceAlloc(size_t bytes, void** out, char* err, size_t errlen) {
  if (!out) return report(onestep_cuda::Status::fail("alloc: null output"), err, errlen);
  *out = nullptr;
  if (bytes == 0) bytes = 1;
  cudaError_t e = cudaMalloc(out, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t freeBytes = 0, total = 0;
    cudaMemGetInfo(&freeBytes, &total);
    return report(onestep_cuda::Status::fail("out of memory: " + std::to_string(bytes) + " bytes requested, " + std::to_string(freeBytes) +
                                              " of " + std::to_string(total) + " free on the GPU"),
                  err, errlen);
  }
  return report(onestep_cuda::cudaStatus(e, "cudaMalloc"), err, errlen);
}

void deviceRelease(void* p) {
  if (p) cudaFree(p);
  cudaGetLastError();
}

int memInfo(uint64_t* freeBytes, uint64_t* totalBytes, char* err, size_t errlen) {
  size_t f = 0, t = 0;
  const int rc = report(onestep_cuda::cudaStatus(cudaMemGetInfo(&f, &t), "cudaMemGetInfo"), err, errlen);
  if (freeBytes) *freeBytes = f;
  if (totalBytes) *totalBytes = t;
  return rc;
}

int streamCreate(void** out, char* err, size_t errlen) {
  cudaStream_t s = nullptr;
  const int rc = report(onestep_cuda::cudaStatus(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate"), err, errlen);
  if (out) *out = rc == 0 ? (void*)s : nullptr;
  return rc;
}

void streamDestroy(void* s) {
  if (s) cudaStreamDestroy((cudaStream_t)s);
  cudaGetLastError();
}

int streamSync(void* s, char* err, size_t errlen) {
  return report(onestep_cuda::cudaStatus(cudaStreamSynchronize((cudaStream_t)s), "running the GPU work"), err, errlen);
}

int copyToDevice(void* dst, const void* src, size_t bytes, void* s, char* err, size_t errlen) {
  if (bytes == 0) return 0;
  return report(onestep_cuda::cudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, (cudaStream_t)s), "copy to the GPU"), err,
                errlen);
}

int copyToHost(void* dst, const void* src, size_t bytes, void* s, char* err, size_t errlen) {
  if (bytes == 0) return 0;
  return report(onestep_cuda::cudaStatus(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, (cudaStream_t)s), "copy from the GPU"), err,
                errlen);
}

int convert(void* dst, int32_t dstDtype, const void* src, int32_t srcDtype, int64_t n, void* s, char* err, size_t errlen) {
  return report(onestep_cuda::launchConvert(dst, dstDtype, src, srcDtype, n, (cudaStream_t)s), err, errlen);
}

int loraFuse(const onestep_cuda_tensor* out, const onestep_cuda_tensor* base, int32_t nParts, const onestep_cuda_tensor* ups,
             const onestep_cuda_tensor* downs, const float* factors, int64_t cin, void* s, char* err, size_t errlen) {
  if (!out || !base) return report(onestep_cuda::Status::fail("lora_fuse: null argument"), err, errlen);
  return report(onestep_cuda::launchLoraFuse(*out, *base, nParts, ups, downs, factors, cin, (cudaStream_t)s), err, errlen);
}

int runNode(const onestep_cuda_node* node, void* s, char* err, size_t errlen) {
  if (!node) return report(onestep_cuda::Status::fail("run_node: null node"), err, errlen);
  return report(onestep_cuda::runNode(*node, (cudaStream_t)s), err, errlen);
}

int supportsNode(const onestep_cuda_node* node, char* why, size_t whylen) {
  const onestep_cuda::Status st = node ? onestep_cuda::supportsNode(*node) : onestep_cuda::Status::fail("supports_node: null node");
  if (st.good()) return 1;
  report(st, why, whylen);
  return 0;
}

int planNode(const onestep_cuda_node* node, onestep_cuda_node_plan* out, char* err, size_t errlen) {
  if (!node || !out) return report(onestep_cuda::Status::fail("plan_node: null argument"), err, errlen);
  return report(onestep_cuda::planNode(*node, out), err, errlen);
}

const char* mathLibraries() {
  static const std::string json = "[" + onestep_cuda::cublasLtInfoJson() + "," + onestep_cuda::cudnnInfoJson() + "]";
  return json.c_str();
}

int captureBegin(void* s, char* err, size_t errlen) {
  return report(onestep_cuda::cudaStatus(cudaStreamBeginCapture((cudaStream_t)s, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture"),
                err, errlen);
}

int captureEnd(void* s, void** out, char* err, size_t errlen) {
  if (out) *out = nullptr;
  cudaGraph_t graph = nullptr;
  int rc = report(onestep_cuda::cudaStatus(cudaStreamEndCapture((cudaStream_t)s, &graph), "cudaStreamEndCapture"), err, errlen);
  if (rc) return rc;
  cudaGraphExec_t exec = nullptr;
  rc = report(onestep_cuda::cudaStatus(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate"), err, errlen);
  cudaGraphDestroy(graph);
  if (rc == 0 && out) *out = (void*)exec;
  return rc;
}

int graphLaunch(void* exec, void* s, char* err, size_t errlen) {
  return report(onestep_cuda::cudaStatus(cudaGraphLaunch((cudaGraphExec_t)exec, (cudaStream_t)s), "cudaGraphLaunch"), err, errlen);
}

void graphDestroy(void* exec) {
  if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
  cudaGetLastError();
}

const onestep_cuda_api kApi = {ONESTEP_CUDA_ABI, buildInfo,  probe,        deviceInfo,  deviceAlloc, deviceRelease, memInfo,
                               streamCreate,     streamDestroy, streamSync, copyToDevice, copyToHost, convert,     runNode,
                               supportsNode,     planNode,      mathLibraries, captureBegin,     captureEnd, graphLaunch,  graphDestroy,
                               loraFuse};

}  // namespace

extern "C" const onestep_cuda_api* onestep_cuda_get_api(int abi_version) {
  return abi_version == ONESTEP_CUDA_ABI ? &kApi : nullptr;
}
