// A cuDNN 9 stand-in for cusim: the functions of kernels/vendor/cudnn.h, implemented on the CPU from
// NVIDIA's documented semantics of the legacy convolution API, built as its own libcudnn.so.9 that
// the CUDA library's search finds like the real one (tests name it with ONESTEP_CUDNN;
// scripts/build-cuda-sim.js). It runs on cusim's device memory, and the convolution is a kernel on
// the stream set on the handle, so CUDA-graph capture records it like any kernel.
//
// What it holds callers to (where a mistake would be silent, or a crash, on a GPU): descriptors set
// before use; the configurations onestep uses only (x, w and y all HALF or all BFLOAT16 with FLOAT
// compute, or all FLOAT; NHWC tensors and filter; cross-correlation; no dilation), anything else
// NOT_SUPPORTED; a y descriptor with the dimensions the convolution gives (cudnnGetConvolution2d-
// ForwardOutputDim's formula) and the filter's channels matching x's, else BAD_PARAM; every tensor
// inside one device allocation; a workspace at least as large as the algorithm needs (it writes all
// of it); only the algorithms its search returned. y is written as alpha * conv + beta * y, rounded
// to y's type; beta = 0 does not read y.
//
// Build variants (for the loader's tests): CUSIM_DNN_VERSION (default 9.8.0), CUSIM_DNN_CUDART (the
// CUDA it says it was built for, default 13.0), CUSIM_DNN_BROKEN (leaves cudnnConvolutionForward out).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <new>

#include "../vendor/cudnn.h"

#ifndef CUSIM_DNN_VERSION
#define CUSIM_DNN_VERSION 90800
#endif
#ifndef CUSIM_DNN_CUDART
#define CUSIM_DNN_CUDART 13000
#endif

#define DNN_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace onestep_dnn;

struct HandleObj {
  cudaStream_t stream = nullptr;
};
struct TensorObj {
  bool set = false;
  int format = 0, type = 0, n = 0, c = 0, h = 0, w = 0;
};
struct FilterObj {
  bool set = false;
  int type = 0, format = 0, k = 0, c = 0, h = 0, w = 0;
};
struct ConvObj {
  bool set = false;
  int ph = 0, pw = 0, sh = 1, sw = 1, dh = 1, dw = 1, mode = 0, compute = 0, math = 0;
};

// The algorithms this stand-in has: IMPLICIT_PRECOMP_GEMM (needs scratch; "fastest") and IMPLICIT_GEMM.
constexpr int kPrecomp = 1, kImplicit = 0;
size_t workspaceOf(int algo) { return algo == kPrecomp ? 8192 : 0; }

int elemSize(int t) { return t == kFloat ? 4 : 2; }

int check(const TensorObj* x, const FilterObj* w, const ConvObj* cv, const TensorObj* y) {
  if (!x || !w || !cv || !y || !x->set || !w->set || !cv->set || !y->set) return kBadParam;
  if (x->format != kNhwc || y->format != kNhwc || w->format != kNhwc) return kNotSupported;
  if (x->type != w->type || x->type != y->type) return kNotSupported;
  if (x->type == kHalf || x->type == kBfloat16) {
    if (cv->compute != kFloat) return kNotSupported;
  } else if (x->type != kFloat || cv->compute != kFloat) {
    return kNotSupported;
  }
  if (cv->mode != kCrossCorrelation || cv->dh != 1 || cv->dw != 1) return kNotSupported;
  if (w->c != x->c || y->c != w->k || y->n != x->n) return kBadParam;
  const int ho = (x->h + 2 * cv->ph - w->h) / cv->sh + 1, wo = (x->w + 2 * cv->pw - w->w) / cv->sw + 1;
  if (ho <= 0 || wo <= 0 || y->h != ho || y->w != wo) return kBadParam;
  return kSuccess;
}

size_t bytesOf(const TensorObj* t) { return (size_t)t->n * t->c * t->h * t->w * elemSize(t->type); }

struct Conv {
  int type;
  int n, h, w, c, k, kh, kw, ho, wo, ph, pw, sh, sw;
  const void *x, *f;
  void* y;
  float alpha, beta;
};

float load(int type, const void* p, int64_t i) {
  switch (type) {
    case kHalf: return __half2float(static_cast<const __half*>(p)[i]);
    case kBfloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

void store(int type, void* p, int64_t i, float v) {
  switch (type) {
    case kHalf: static_cast<__half*>(p)[i] = __float2half(v); break;
    case kBfloat16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// One block per output pixel (b, oy, ox): every output channel
__global__ void convPixel(Conv g) {
  const int64_t pix = blockIdx.x;
  const int ox = (int)(pix % g.wo), oy = (int)(pix / g.wo % g.ho), b = (int)(pix / ((int64_t)g.wo * g.ho));
  for (int k = 0; k < g.k; ++k) {
    float acc = 0.0f;
    for (int r = 0; r < g.kh; ++r) {
      const int iy = oy * g.sh - g.ph + r;
      if (iy < 0 || iy >= g.h) continue;
      for (int s = 0; s < g.kw; ++s) {
        const int ix = ox * g.sw - g.pw + s;
        if (ix < 0 || ix >= g.w) continue;
        const int64_t xo = (((int64_t)b * g.h + iy) * g.w + ix) * g.c, fo = (((int64_t)k * g.kh + r) * g.kw + s) * g.c;
        for (int ci = 0; ci < g.c; ++ci) acc += load(g.type, g.x, xo + ci) * load(g.type, g.f, fo + ci);
      }
    }
    const int64_t yi = pix * g.k + k;
    float v = g.alpha * acc;
    if (g.beta != 0.0f) v += g.beta * load(g.type, g.y, yi);
    store(g.type, g.y, yi, v);
  }
}

__global__ void fillWorkspace(unsigned char* ws, uint64_t bytes) {
  for (uint64_t i = 0; i < bytes; ++i) ws[i] = (unsigned char)(i * 131u);
}

}  // namespace

DNN_EXPORT size_t cudnnGetVersion() { return CUSIM_DNN_VERSION; }
DNN_EXPORT size_t cudnnGetCudartVersion() { return CUSIM_DNN_CUDART; }
DNN_EXPORT const char* cudnnGetErrorString(int status) {
  switch (status) {
    case kSuccess: return "CUDNN_STATUS_SUCCESS";
    case kBadParam: return "CUDNN_STATUS_BAD_PARAM";
    case kNotSupported: return "CUDNN_STATUS_NOT_SUPPORTED";
    case kExecutionFailed: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_STATUS_UNKNOWN";
}

DNN_EXPORT int cudnnCreate(Handle* h) {
  if (!h) return kBadParam;
  *h = new (std::nothrow) HandleObj();
  return *h ? kSuccess : kNotInitialized;
}
DNN_EXPORT int cudnnDestroy(Handle h) {
  delete static_cast<HandleObj*>(h);
  return kSuccess;
}
DNN_EXPORT int cudnnSetStream(Handle h, Stream s) {
  if (!h) return kBadParam;
  static_cast<HandleObj*>(h)->stream = static_cast<cudaStream_t>(s);
  return kSuccess;
}

DNN_EXPORT int cudnnCreateTensorDescriptor(TensorDesc* d) {
  if (!d) return kBadParam;
  *d = new TensorObj();
  return kSuccess;
}
DNN_EXPORT int cudnnSetTensor4dDescriptor(TensorDesc d, int format, int type, int n, int c, int h, int w) {
  auto* o = static_cast<TensorObj*>(d);
  if (!o || n <= 0 || c <= 0 || h <= 0 || w <= 0 || (format != kNchw && format != kNhwc)) return kBadParam;
  *o = TensorObj{true, format, type, n, c, h, w};
  return kSuccess;
}
DNN_EXPORT int cudnnDestroyTensorDescriptor(TensorDesc d) {
  delete static_cast<TensorObj*>(d);
  return kSuccess;
}
DNN_EXPORT int cudnnCreateFilterDescriptor(FilterDesc* d) {
  if (!d) return kBadParam;
  *d = new FilterObj();
  return kSuccess;
}
DNN_EXPORT int cudnnSetFilter4dDescriptor(FilterDesc d, int type, int format, int k, int c, int h, int w) {
  auto* o = static_cast<FilterObj*>(d);
  if (!o || k <= 0 || c <= 0 || h <= 0 || w <= 0 || (format != kNchw && format != kNhwc)) return kBadParam;
  *o = FilterObj{true, type, format, k, c, h, w};
  return kSuccess;
}
DNN_EXPORT int cudnnDestroyFilterDescriptor(FilterDesc d) {
  delete static_cast<FilterObj*>(d);
  return kSuccess;
}
DNN_EXPORT int cudnnCreateConvolutionDescriptor(ConvDesc* d) {
  if (!d) return kBadParam;
  *d = new ConvObj();
  return kSuccess;
}
DNN_EXPORT int cudnnSetConvolution2dDescriptor(ConvDesc d, int ph, int pw, int sh, int sw, int dh, int dw, int mode, int compute) {
  auto* o = static_cast<ConvObj*>(d);
  if (!o || ph < 0 || pw < 0 || sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0) return kBadParam;
  *o = ConvObj{true, ph, pw, sh, sw, dh, dw, mode, compute, o->math};
  return kSuccess;
}
DNN_EXPORT int cudnnSetConvolutionMathType(ConvDesc d, int math) {
  auto* o = static_cast<ConvObj*>(d);
  if (!o || math < 0 || math > 3) return kBadParam;
  o->math = math;
  return kSuccess;
}
DNN_EXPORT int cudnnDestroyConvolutionDescriptor(ConvDesc d) {
  delete static_cast<ConvObj*>(d);
  return kSuccess;
}

DNN_EXPORT int cudnnFindConvolutionForwardAlgorithm(Handle h, TensorDesc x, FilterDesc w, ConvDesc cv, TensorDesc y, int requested, int* returned,
                                                    FwdAlgoPerf* results) {
  if (!h || !returned || !results || requested < 1) return kBadParam;
  *returned = 0;
  const int st = check(static_cast<TensorObj*>(x), static_cast<FilterObj*>(w), static_cast<ConvObj*>(cv), static_cast<TensorObj*>(y));
  if (st != kSuccess) return st;
  const int algos[] = {kPrecomp, kImplicit};  // fastest first, as the real search sorts them
  for (int i = 0; i < 2 && i < requested; ++i) {
    std::memset(&results[i], 0, sizeof(FwdAlgoPerf));
    results[i].algo = algos[i];
    results[i].status = kSuccess;
    results[i].time = 1.0f + (float)i;
    results[i].memory = workspaceOf(algos[i]);
    results[i].mathType = static_cast<ConvObj*>(cv)->math;
    ++*returned;
  }
  return kSuccess;
}

DNN_EXPORT int cudnnGetConvolutionForwardWorkspaceSize(Handle h, TensorDesc x, FilterDesc w, ConvDesc cv, TensorDesc y, int algo, size_t* bytes) {
  if (!h || !bytes) return kBadParam;
  const int st = check(static_cast<TensorObj*>(x), static_cast<FilterObj*>(w), static_cast<ConvObj*>(cv), static_cast<TensorObj*>(y));
  if (st != kSuccess) return st;
  if (algo != kPrecomp && algo != kImplicit) return kNotSupported;
  *bytes = workspaceOf(algo);
  return kSuccess;
}

#ifndef CUSIM_DNN_BROKEN
DNN_EXPORT int cudnnConvolutionForward(Handle h, const void* alpha, TensorDesc xDesc, const void* x, FilterDesc wDesc, const void* w, ConvDesc cvDesc,
                                       int algo, void* workspace, size_t workspaceBytes, const void* beta, TensorDesc yDesc, void* y) {
  if (!h || !alpha || !beta || !x || !w || !y) return kBadParam;
  const auto *tx = static_cast<TensorObj*>(xDesc), *ty = static_cast<TensorObj*>(yDesc);
  const auto* tw = static_cast<FilterObj*>(wDesc);
  const auto* cv = static_cast<ConvObj*>(cvDesc);
  const int st = check(tx, tw, cv, ty);
  if (st != kSuccess) return st;
  if (algo != kPrecomp && algo != kImplicit) return kNotSupported;
  const size_t need = workspaceOf(algo);
  if (need && (!workspace || workspaceBytes < need || !cusim::deviceRange(workspace, need))) return kBadParam;
  const size_t filterBytes = (size_t)tw->k * tw->c * tw->h * tw->w * elemSize(tw->type);
  if (!cusim::deviceRange(x, bytesOf(tx)) || !cusim::deviceRange(w, filterBytes) || !cusim::deviceRange(y, bytesOf(ty))) return kBadParam;
  Conv g;
  g.type = tx->type;
  g.n = tx->n, g.h = tx->h, g.w = tx->w, g.c = tx->c;
  g.k = tw->k, g.kh = tw->h, g.kw = tw->w;
  g.ho = ty->h, g.wo = ty->w;
  g.ph = cv->ph, g.pw = cv->pw, g.sh = cv->sh, g.sw = cv->sw;
  g.x = x, g.f = w, g.y = y;
  std::memcpy(&g.alpha, alpha, sizeof(float));  // float scaling for HALF / BFLOAT16 / FLOAT configurations
  std::memcpy(&g.beta, beta, sizeof(float));
  cudaStream_t s = static_cast<HandleObj*>(h)->stream;
  if (need) cusim::launch(fillWorkspace, 1, 1, 0, s)(static_cast<unsigned char*>(workspace), (uint64_t)need);
  cusim::launch(convPixel, dim3((unsigned)((int64_t)g.n * g.ho * g.wo)), 1, 0, s)(g);
  return cudaGetLastError() == cudaSuccess ? kSuccess : kExecutionFailed;
}
#endif
