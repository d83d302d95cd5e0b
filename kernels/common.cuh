// What every kernel file shares: errors as status + message (never exit), tensor descriptors,
// activations (the same formulas as native/cpu/activation.h), reading F32 / F16 / BF16 weights.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "../native/graph/op_defs.h"
#include "onestep_cuda_api.h"

// A kernel launch: ONESTEP_LAUNCH(kernel, grid, block[, smem, stream])(args...). nvcc gets the
// <<<>>> syntax; the CPU simulator (kernels/sim, ONESTEP_CUDA_SIM) gets a call that runs it.
#ifdef ONESTEP_CUDA_SIM
#define ONESTEP_LAUNCH(kernel, ...) ::cusim::launch(kernel, __VA_ARGS__)
#else
#define ONESTEP_LAUNCH(kernel, ...) kernel<<<__VA_ARGS__>>>
#endif

namespace onestep_cuda {

// A failure with its message; launchers return it, the entry points copy it into err.
struct Status {
  int code = 0;
  std::string message;
  static Status ok() { return Status{}; }
  static Status fail(const std::string& m) { return Status{1, m}; }
  bool good() const { return code == 0; }
};

inline Status cudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::ok();
  cudaGetLastError();  // clear the sticky-free error so later calls can proceed
  if (e == cudaErrorMemoryAllocation) return Status::fail(std::string("out of memory: ") + what);
  return Status::fail(std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

// The launch of a kernel just issued.
inline Status launched(const char* what) { return cudaStatus(cudaGetLastError(), what); }

inline int64_t numel(const onestep_cuda_tensor& t) {
  int64_t n = 1;
  for (int i = 0; i < t.rank; ++i) n *= t.shape[i];
  return n;
}

inline int64_t lastDim(const onestep_cuda_tensor& t) { return t.rank ? t.shape[t.rank - 1] : 1; }

inline bool present(const onestep_cuda_node& n, int i) { return i < n.n_inputs && n.inputs[i].data != nullptr; }
// Whether optional input i is given, also at plan time (no data yet: an absent input is all zeros,
// a given one has its rank; the optional inputs that plans look at are never scalars).
inline bool given(const onestep_cuda_node& n, int i) { return i < n.n_inputs && (n.inputs[i].data != nullptr || n.inputs[i].rank > 0); }

// Activation codes: native/graph/op_defs.h (ONESTEP_ACT_TABLE), as kSilu, kGelu, ...
#define ONESTEP_ACT_CODE(id, name) k##id,
enum ActCode : int { ONESTEP_ACT_TABLE(ONESTEP_ACT_CODE) };
#undef ONESTEP_ACT_CODE

// A node's attributes as the op's typed struct (op_defs.h), e.g. attrsOf<onestep::Conv2dAttrs>(n).
template <typename T>
inline T attrsOf(const onestep_cuda_node& n) {
  return T::from(n.attrs);
}

__device__ __forceinline__ float applyAct(int a, float x) {
  switch (a) {
    case kSilu: return x / (1.0f + expf(-x));
    case kGelu: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case kGeluTanh: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case kQuickGelu: return x / (1.0f + expf(-1.702f * x));
    case kRelu: return x > 0.0f ? x : 0.0f;
    case kTanh: return tanhf(x);
    case kSigmoid: return 1.0f / (1.0f + expf(-x));
    case kExp: return expf(x);
    default: return x;
  }
}

// Element i of a float tensor stored as F32, F16 or BF16.
__device__ __forceinline__ float loadAny(const void* p, int dtype, int64_t i) {
  switch (dtype) {
    case ONESTEP_CUDA_F16: return __half2float(static_cast<const __half*>(p)[i]);
    case ONESTEP_CUDA_BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

// Stores v as element i of a float tensor stored as F32, F16 or BF16 (rounded to nearest even).
__device__ __forceinline__ void storeAny(void* p, int dtype, int64_t i, float v) {
  switch (dtype) {
    case ONESTEP_CUDA_F16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case ONESTEP_CUDA_BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

__host__ __device__ __forceinline__ int64_t floatBytes(int dtype) { return dtype == ONESTEP_CUDA_F32 ? 4 : 2; }

// Activations as kernels see them: each tensor stored as F32 or as the graph's 16-bit type (the
// executor chooses per value, docs/CUDA.md "Activations"), read as float and written rounded.
// x[i] and x + offset work as on a float pointer, in elements.
struct ActIn {
  const void* p;
  int dt;
  __host__ __device__ ActIn operator+(int64_t o) const { return ActIn{static_cast<const char*>(p) + o * floatBytes(dt), dt}; }
  __device__ __forceinline__ float operator[](int64_t i) const { return loadAny(p, dt, i); }
  __host__ __device__ explicit operator bool() const { return p != nullptr; }
};
struct ActRef {
  void* p;
  int dt;
  int64_t i;
  __device__ __forceinline__ void operator=(float v) const { storeAny(p, dt, i, v); }
};
struct ActOut {
  void* p;
  int dt;
  __host__ __device__ ActOut operator+(int64_t o) const { return ActOut{static_cast<char*>(p) + o * floatBytes(dt), dt}; }
  __device__ __forceinline__ ActRef operator[](int64_t i) const { return ActRef{p, dt, i}; }
};
inline ActIn actIn(const onestep_cuda_tensor& t) { return ActIn{t.data, t.dtype}; }
inline ActOut actOut(const onestep_cuda_tensor& t) { return ActOut{t.data, t.dtype}; }
// Optional input i, or a null ActIn when absent.
inline ActIn actIn(const onestep_cuda_node& n, int i) { return present(n, i) ? actIn(n.inputs[i]) : ActIn{nullptr, ONESTEP_CUDA_F32}; }

// float -> a tensor-core operand type, rounded to nearest even (toOperand<half>, toOperand<__nv_bfloat16>),
// and back
template <class T>
__device__ __forceinline__ T toOperand(float v);
template <>
__device__ __forceinline__ half toOperand<half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 toOperand<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

inline unsigned blocksFor(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

// A grid-stride loop bound: enough blocks to fill the GPU, not one per element.
inline unsigned gridFor(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return (unsigned)(b < 65535 * 8 ? (b < 1 ? 1 : b) : 65535 * 8);
}

}  // namespace onestep_cuda
