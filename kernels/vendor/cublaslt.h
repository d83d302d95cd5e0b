// The part of cuBLASLt's C interface that kernels/cublaslt.cu uses, declared by hand: the build
// machines have no cuBLAS headers, and the library is dlopen()ed at run time from the user's CUDA
// toolkit or PyTorch wheels (docs/CUDA.md, "Vendor libraries"). Written from NVIDIA's documented
// interface (values collected in ../shared/notes/cuda-libraries.md); the sizes of the structs
// passed by value are asserted below. The cusim stand-in (kernels/sim/cublaslt_sim.cc) implements
// the same declarations on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace onestep_lt {

// cublasStatus_t
enum : int { kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kExecutionFailed = 13, kNotSupported = 15 };

// cudaDataType_t (library_types.h)
enum : int { kR32F = 0, kR16F = 2, kR16BF = 14 };
// cublasComputeType_t
enum : int { kCompute32F = 68 };
// cublasOperation_t
enum : int { kOpN = 0, kOpT = 1 };

// cublasLtMatmulDescAttributes_t
enum : int {
  kDescComputeType = 0,  // int32
  kDescScaleType = 1,    // int32 (cudaDataType_t)
  kDescPointerMode = 2,  // int32: 0 = host scalars
  kDescTransA = 3,       // int32
  kDescTransB = 4,       // int32
  kDescEpilogue = 7,     // uint32
  kDescBiasPointer = 8,  // const void*
};
// cublasLtEpilogue_t
enum : uint32_t { kEpilogueDefault = 1, kEpilogueBias = 4 };
// cublasLtMatrixLayoutAttribute_t
enum : int { kLayoutType = 0, kLayoutOrder = 1, kLayoutRows = 2, kLayoutCols = 3, kLayoutLd = 4, kLayoutBatchCount = 5 /* int32 */,
             kLayoutStridedBatchOffset = 6 /* int64, elements */ };
// cublasLtOrder_t
enum : int { kOrderCol = 0, kOrderRow = 1 };
// cublasLtMatmulPreferenceAttributes_t
enum : int { kPrefSearchMode = 0, kPrefMaxWorkspaceBytes = 1, kPrefMinAlignA = 5, kPrefMinAlignB = 6, kPrefMinAlignC = 7, kPrefMinAlignD = 8 };

using Handle = void*;
using MatmulDesc = void*;
using Layout = void*;
using Preference = void*;
using Stream = void*;  // cudaStream_t

// cublasLtMatmulAlgo_t: opaque, 8 x uint64
struct Algo {
  uint64_t data[8];
};
// cublasLtMatmulHeuristicResult_t
struct HeuristicResult {
  Algo algo;
  size_t workspaceSize;
  int state;  // cublasStatus_t
  float wavesCount;
  int reserved[4];
};
static_assert(sizeof(Algo) == 64, "cublasLtMatmulAlgo_t is 64 bytes");
static_assert(sizeof(HeuristicResult) == 96 && offsetof(HeuristicResult, workspaceSize) == 64 && offsetof(HeuristicResult, state) == 72 &&
                  offsetof(HeuristicResult, wavesCount) == 76,
              "cublasLtMatmulHeuristicResult_t is {algo; size_t workspaceSize; int state; float wavesCount; int reserved[4]} = 96 bytes");

// The functions, as pointer types (each resolved by name with dlsym).
using GetVersionFn = size_t (*)();
using CreateFn = int (*)(Handle*);
using DestroyFn = int (*)(Handle);
using MatmulDescCreateFn = int (*)(MatmulDesc*, int computeType, int scaleType);
using MatmulDescSetAttributeFn = int (*)(MatmulDesc, int attr, const void* buf, size_t size);
using MatmulDescDestroyFn = int (*)(MatmulDesc);
using LayoutCreateFn = int (*)(Layout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
using LayoutSetAttributeFn = int (*)(Layout, int attr, const void* buf, size_t size);
using LayoutDestroyFn = int (*)(Layout);
using PreferenceCreateFn = int (*)(Preference*);
using PreferenceSetAttributeFn = int (*)(Preference, int attr, const void* buf, size_t size);
using PreferenceDestroyFn = int (*)(Preference);
using AlgoGetHeuristicFn = int (*)(Handle, MatmulDesc, Layout a, Layout b, Layout c, Layout d, Preference, int requested, HeuristicResult* results,
                                   int* returned);
using MatmulFn = int (*)(Handle, MatmulDesc, const void* alpha, const void* A, Layout a, const void* B, Layout b, const void* beta, const void* C,
                         Layout c, void* D, Layout d, const Algo* algo, void* workspace, size_t workspaceBytes, Stream stream);

// The exported names, in the order kernels/cublaslt.cu resolves them.
#define ONESTEP_LT_FUNCTIONS(X)                                                                                                    \
  X(GetVersion, cublasLtGetVersion)                                                                                                \
  X(Create, cublasLtCreate)                                                                                                        \
  X(Destroy, cublasLtDestroy)                                                                                                      \
  X(MatmulDescCreate, cublasLtMatmulDescCreate)                                                                                    \
  X(MatmulDescSetAttribute, cublasLtMatmulDescSetAttribute)                                                                        \
  X(MatmulDescDestroy, cublasLtMatmulDescDestroy)                                                                                  \
  X(LayoutCreate, cublasLtMatrixLayoutCreate)                                                                                      \
  X(LayoutSetAttribute, cublasLtMatrixLayoutSetAttribute)                                                                          \
  X(LayoutDestroy, cublasLtMatrixLayoutDestroy)                                                                                    \
  X(PreferenceCreate, cublasLtMatmulPreferenceCreate)                                                                              \
  X(PreferenceSetAttribute, cublasLtMatmulPreferenceSetAttribute)                                                                  \
  X(PreferenceDestroy, cublasLtMatmulPreferenceDestroy)                                                                            \
  X(AlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic)                                                                              \
  X(Matmul, cublasLtMatmul)

}  // namespace onestep_lt
