// A cuBLASLt stand-in for cusim: the functions of kernels/vendor/cublaslt.h, implemented on the CPU
// from NVIDIA's documented semantics, built as its own libcublasLt.so.<major> that the CUDA
// library's search finds like the real one (tests name it with ONESTEP_CUBLASLT;
// scripts/build-cuda-sim.js). It runs on cusim's device memory and streams: the product is a
// kernel launched on the caller's stream, so CUDA-graph capture records it like any kernel.
//
// What it holds callers to (the real library's rules, where a mistake would be silent on a GPU):
// attribute sizes must match their types; only the combinations onestep uses are supported
// (compute 32F, scale 32F, A and B both 16F or 16BF, C and D of one type, 32F or A's, column order,
// epilogue DEFAULT or BIAS with a non-null bias of D's type: BIAS_DATA_TYPE is never set) and anything else is NOT_SUPPORTED; op(A), op(B), C and D shapes must
// agree; a leading dimension below the rows is INVALID_VALUE; every matrix it touches must lie
// inside one device allocation, be aligned as the preference promised, and the workspace must be
// at least what the algorithm asked for (it writes all of it).
//
// Build variants (for the loader's tests): CUSIM_LT_VERSION (the version it reports, default
// 13.1.0), CUSIM_LT_BROKEN (leaves cublasLtMatmul out).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <tuple>

#include "../vendor/cublaslt.h"

#ifndef CUSIM_LT_VERSION
#define CUSIM_LT_VERSION 130100
#endif

#define LT_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

using namespace onestep_lt;

constexpr uint64_t kMagic = 0x63757369'6d4c7431ull;  // "cusimLt1"
constexpr uint64_t kWorkspace = 4096;                  // what every algorithm asks for

struct HandleObj {
  uint64_t magic = kMagic;
};
struct DescObj {
  int compute, scale;
  int32_t transA = kOpN, transB = kOpN, pointerMode = 0;
  uint32_t epilogue = kEpilogueDefault;
  const void* bias = nullptr;
};
struct LayoutObj {
  int type;
  int32_t order = kOrderCol;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;  // elements between batches
};
struct PrefObj {
  uint64_t maxWorkspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};
};

int elemSize(int t) { return t == kR32F ? 4 : 2; }

template <class T>
int readAttr(T* dst, const void* buf, size_t size) {
  if (!buf || size != sizeof(T)) return kInvalidValue;
  std::memcpy(dst, buf, sizeof(T));
  return kSuccess;
}

// Whether a descriptor set is one this stand-in (and onestep) supports, and the GEMM's sizes.
int check(const DescObj* d, const LayoutObj* a, const LayoutObj* b, const LayoutObj* c, const LayoutObj* dd, uint64_t* m, uint64_t* n,
          uint64_t* k) {
  if (!d || !a || !b || !c || !dd) return kInvalidValue;
  for (const LayoutObj* l : {a, b, c, dd})
    if (l->ld < (int64_t)l->rows || l->rows == 0 || l->cols == 0) return kInvalidValue;
  if (d->compute != kCompute32F || d->scale != kR32F || d->pointerMode != 0) return kNotSupported;
  if (a->type != b->type || (a->type != kR16F && a->type != kR16BF)) return kNotSupported;
  if (c->type != dd->type || (dd->type != kR32F && dd->type != a->type)) return kNotSupported;
  for (const LayoutObj* l : {a, b, c, dd})
    if (l->order != kOrderCol) return kNotSupported;
  if (d->epilogue != kEpilogueDefault && d->epilogue != kEpilogueBias) return kNotSupported;
  const uint64_t am = d->transA == kOpN ? a->rows : a->cols, ak = d->transA == kOpN ? a->cols : a->rows;
  const uint64_t bk = d->transB == kOpN ? b->rows : b->cols, bn = d->transB == kOpN ? b->cols : b->rows;
  if ((d->transA != kOpN && d->transA != kOpT) || (d->transB != kOpN && d->transB != kOpT)) return kNotSupported;
  if (ak != bk || am != dd->rows || bn != dd->cols || c->rows != dd->rows || c->cols != dd->cols) return kInvalidValue;
  if (a->batch != dd->batch || b->batch != dd->batch || c->batch != dd->batch || dd->batch < 1) return kInvalidValue;
  *m = am, *n = bn, *k = ak;
  return kSuccess;
}

// The bytes a column-major matrix (all its batches) spans.
size_t span(const LayoutObj* l) {
  return ((size_t)(l->batch - 1) * (size_t)l->stride + (size_t)(l->cols - 1) * (size_t)l->ld + l->rows) * elemSize(l->type);
}

struct Gemm {
  int type, outType;  // A and B's; C, D and the bias's
  int32_t transA, transB;
  uint64_t m, n, k;
  int64_t lda, ldb, ldc, ldd;
  int64_t sa, sb, sc, sd;  // batch strides
  const void *A, *B;
  const void *C, *bias;
  void* D;
  float alpha, beta;
};

float operand(int type, const void* p, int64_t i) {
  if (type == kR32F) return static_cast<const float*>(p)[i];
  return type == kR16BF ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]) : __half2float(static_cast<const __half*>(p)[i]);
}

void store(int type, void* p, int64_t i, float v) {
  if (type == kR32F) static_cast<float*>(p)[i] = v;
  else if (type == kR16BF) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  else static_cast<__half*>(p)[i] = __float2half_rn(v);
}

// One block per column of D and batch: D[:, j] = alpha op(A) op(B)[:, j] + beta C[:, j] (+ bias)
__global__ void gemmColumn(Gemm g) {
  const uint64_t j = blockIdx.x;
  const int64_t bt = blockIdx.y;
  for (uint64_t i = 0; i < g.m; ++i) {
    float acc = 0.0f;
    for (uint64_t p = 0; p < g.k; ++p) {
      const int64_t ai = bt * g.sa + (g.transA == kOpN ? (int64_t)(i + p * g.lda) : (int64_t)(p + i * g.lda));
      const int64_t bi = bt * g.sb + (g.transB == kOpN ? (int64_t)(p + j * g.ldb) : (int64_t)(j + p * g.ldb));
      acc += operand(g.type, g.A, ai) * operand(g.type, g.B, bi);
    }
    float v = g.alpha * acc;
    if (g.beta != 0.0f) v += g.beta * operand(g.outType, g.C, bt * g.sc + (int64_t)(i + j * g.ldc));
    if (g.bias) v += operand(g.outType, g.bias, (int64_t)i);
    store(g.outType, g.D, bt * g.sd + (int64_t)(i + j * g.ldd), v);
  }
}

__global__ void fillWorkspace(unsigned char* ws, uint64_t bytes) {
  for (uint64_t i = 0; i < bytes; ++i) ws[i] = (unsigned char)(i * 131u);
}

bool alignedTo(const void* p, uint32_t a) { return a == 0 || reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace

LT_EXPORT size_t cublasLtGetVersion() { return CUSIM_LT_VERSION; }

LT_EXPORT int cublasLtCreate(Handle* h) {
  if (!h) return kInvalidValue;
  *h = new (std::nothrow) HandleObj();
  return *h ? kSuccess : kNotInitialized;
}
LT_EXPORT int cublasLtDestroy(Handle h) {
  delete static_cast<HandleObj*>(h);
  return kSuccess;
}

LT_EXPORT int cublasLtMatmulDescCreate(MatmulDesc* d, int computeType, int scaleType) {
  if (!d) return kInvalidValue;
  auto* o = new DescObj();
  o->compute = computeType;
  o->scale = scaleType;
  *d = o;
  return kSuccess;
}
LT_EXPORT int cublasLtMatmulDescSetAttribute(MatmulDesc d, int attr, const void* buf, size_t size) {
  auto* o = static_cast<DescObj*>(d);
  if (!o) return kInvalidValue;
  switch (attr) {
    case kDescComputeType: return readAttr(&o->compute, buf, size);
    case kDescScaleType: return readAttr(&o->scale, buf, size);
    case kDescPointerMode: return readAttr(&o->pointerMode, buf, size);
    case kDescTransA: return readAttr(&o->transA, buf, size);
    case kDescTransB: return readAttr(&o->transB, buf, size);
    case kDescEpilogue: return readAttr(&o->epilogue, buf, size);
    case kDescBiasPointer: return readAttr(&o->bias, buf, size);
  }
  return kNotSupported;
}
LT_EXPORT int cublasLtMatmulDescDestroy(MatmulDesc d) {
  delete static_cast<DescObj*>(d);
  return kSuccess;
}

LT_EXPORT int cublasLtMatrixLayoutCreate(Layout* l, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (!l) return kInvalidValue;
  auto* o = new LayoutObj();
  o->type = type;
  o->rows = rows;
  o->cols = cols;
  o->ld = ld;
  *l = o;
  return kSuccess;
}
LT_EXPORT int cublasLtMatrixLayoutSetAttribute(Layout l, int attr, const void* buf, size_t size) {
  auto* o = static_cast<LayoutObj*>(l);
  if (!o) return kInvalidValue;
  switch (attr) {
    case kLayoutBatchCount: return readAttr(&o->batch, buf, size);
    case kLayoutStridedBatchOffset: return readAttr(&o->stride, buf, size);
  }
  return kNotSupported;
}
LT_EXPORT int cublasLtMatrixLayoutDestroy(Layout l) {
  delete static_cast<LayoutObj*>(l);
  return kSuccess;
}

LT_EXPORT int cublasLtMatmulPreferenceCreate(Preference* p) {
  if (!p) return kInvalidValue;
  *p = new PrefObj();
  return kSuccess;
}
LT_EXPORT int cublasLtMatmulPreferenceSetAttribute(Preference p, int attr, const void* buf, size_t size) {
  auto* o = static_cast<PrefObj*>(p);
  if (!o) return kInvalidValue;
  if (attr == kPrefMaxWorkspaceBytes) return readAttr(&o->maxWorkspace, buf, size);
  if (attr >= kPrefMinAlignA && attr <= kPrefMinAlignD) return readAttr(&o->align[attr - kPrefMinAlignA], buf, size);
  if (attr == kPrefSearchMode) {
    uint32_t mode;
    return readAttr(&mode, buf, size);
  }
  return kNotSupported;
}
LT_EXPORT int cublasLtMatmulPreferenceDestroy(Preference p) {
  delete static_cast<PrefObj*>(p);
  return kSuccess;
}

LT_EXPORT int cublasLtMatmulAlgoGetHeuristic(Handle h, MatmulDesc d, Layout a, Layout b, Layout c, Layout dd, Preference p, int requested,
                                             HeuristicResult* results, int* returned) {
  if (!h || !p || !results || !returned || requested < 1) return kInvalidValue;
  *returned = 0;
  uint64_t m, n, k;
  const int st = check(static_cast<DescObj*>(d), static_cast<LayoutObj*>(a), static_cast<LayoutObj*>(b), static_cast<LayoutObj*>(c),
                       static_cast<LayoutObj*>(dd), &m, &n, &k);
  if (st != kSuccess) return st;
  const auto* pref = static_cast<PrefObj*>(p);
  if (pref->maxWorkspace < kWorkspace) return kNotSupported;  // every algorithm here needs scratch
  // 16-byte vector loads: every operand must be at least that aligned (and its columns too)
  for (uint32_t al : pref->align)
    if (al < 16) return kNotSupported;
  std::memset(&results[0], 0, sizeof(HeuristicResult));
  results[0].algo.data[0] = kMagic;
  results[0].algo.data[1] = kWorkspace;
  for (int i = 0; i < 4; ++i) results[0].algo.data[2 + i] = pref->align[i];  // what the choice assumed
  results[0].workspaceSize = kWorkspace;
  results[0].state = kSuccess;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return kSuccess;
}

#ifndef CUSIM_LT_BROKEN
LT_EXPORT int cublasLtMatmul(Handle h, MatmulDesc d, const void* alpha, const void* A, Layout a, const void* B, Layout b, const void* beta,
                             const void* C, Layout c, void* D, Layout dd, const Algo* algo, void* workspace, size_t workspaceBytes,
                             Stream stream) {
  if (!h || !alpha || !beta || !algo) return kInvalidValue;
  const auto* desc = static_cast<DescObj*>(d);
  const auto *la = static_cast<LayoutObj*>(a), *lb = static_cast<LayoutObj*>(b), *lc = static_cast<LayoutObj*>(c), *ld = static_cast<LayoutObj*>(dd);
  uint64_t m, n, k;
  int st = check(desc, la, lb, lc, ld, &m, &n, &k);
  if (st != kSuccess) return st;
  if (algo->data[0] != kMagic) return kInvalidValue;  // not from the heuristic
  const uint64_t need = algo->data[1];
  if (need && (!workspace || workspaceBytes < need || !cusim::deviceRange(workspace, need))) return kInvalidValue;
  if (desc->epilogue == kEpilogueBias && (!desc->bias || !cusim::deviceRange(desc->bias, m * elemSize(ld->type)))) return kInvalidValue;
  Gemm g;
  g.type = la->type, g.outType = ld->type;
  g.transA = desc->transA, g.transB = desc->transB;
  g.m = m, g.n = n, g.k = k;
  g.lda = la->ld, g.ldb = lb->ld, g.ldc = lc->ld, g.ldd = ld->ld;
  g.sa = la->stride, g.sb = lb->stride, g.sc = lc->stride, g.sd = ld->stride;
  g.A = A, g.B = B;
  g.C = C;
  g.D = D;
  g.bias = desc->epilogue == kEpilogueBias ? desc->bias : nullptr;
  std::memcpy(&g.alpha, alpha, sizeof(float));  // host pointer mode
  std::memcpy(&g.beta, beta, sizeof(float));
  if (!cusim::deviceRange(A, span(la)) || !cusim::deviceRange(B, span(lb)) || !cusim::deviceRange(D, span(ld)) ||
      (g.beta != 0.0f && !cusim::deviceRange(C, span(lc))))
    return kInvalidValue;
  // the alignment the heuristic was promised (an algorithm chosen for it may rely on it), of every batch
  for (const auto& [p, l, k] : {std::tuple<const void*, const LayoutObj*, int>{A, la, 2}, {B, lb, 3}, {C, lc, 4}, {D, ld, 5}})
    if (l->batch > 1 && ((uint64_t)l->stride * elemSize(l->type)) % (algo->data[k] ? algo->data[k] : 1)) return kNotSupported;
  if (!alignedTo(A, (uint32_t)algo->data[2]) || !alignedTo(B, (uint32_t)algo->data[3]) || !alignedTo(C, (uint32_t)algo->data[4]) ||
      !alignedTo(D, (uint32_t)algo->data[5]))
    return kNotSupported;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (need) cusim::launch(fillWorkspace, 1, 1, 0, s)(static_cast<unsigned char*>(workspace), need);
  cusim::launch(gemmColumn, dim3((unsigned)n, (unsigned)ld->batch), 1, 0, s)(g);
  return cudaGetLastError() == cudaSuccess ? kSuccess : kExecutionFailed;
}
#endif
