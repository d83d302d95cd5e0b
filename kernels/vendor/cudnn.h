// The part of cuDNN 9's C interface that kernels/cudnn.cu uses (the legacy convolution API, which
// needs no graph building), declared by hand: the build machines have no cuDNN, and users have it
// from PyTorch's wheels or a system install (docs/CUDA.md, "Vendor libraries"). Written from
// NVIDIA's documented interface (values in ../shared/notes/cuda-libraries.md); the struct returned
// by value is size-asserted. The cusim stand-in (kernels/sim/cudnn_sim.cc) implements the same
// declarations on the CPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace onestep_dnn {

// cudnnStatus_t: 0 is success; cuDNN 9 numbers its failures by category (cudnnGetErrorString names them)
enum : int { kSuccess = 0, kNotInitialized = 1001, kBadParam = 2000, kNotSupported = 3000, kExecutionFailed = 5000 };
// cudnnDataType_t
enum : int { kFloat = 0, kHalf = 2, kBfloat16 = 9 };
// cudnnTensorFormat_t
enum : int { kNchw = 0, kNhwc = 1 };
// cudnnConvolutionMode_t
enum : int { kConvolution = 0, kCrossCorrelation = 1 };
// cudnnMathType_t
enum : int { kDefaultMath = 0, kTensorOpMath = 1 };
// cudnnConvolutionFwdAlgo_t: 0..7 (IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM, DIRECT, FFT, FFT_TILING, WINOGRAD, WINOGRAD_NONFUSED)
constexpr int kFwdAlgoCount = 8;

using Handle = void*;
using TensorDesc = void*;
using FilterDesc = void*;
using ConvDesc = void*;
using Stream = void*;  // cudaStream_t

// cudnnConvolutionFwdAlgoPerf_t
struct FwdAlgoPerf {
  int algo;
  int status;
  float time;  // ms
  size_t memory;  // workspace bytes
  int determinism;
  int mathType;
  int reserved[3];
};
static_assert(sizeof(FwdAlgoPerf) == 48 && offsetof(FwdAlgoPerf, memory) == 16 && offsetof(FwdAlgoPerf, mathType) == 28,
              "cudnnConvolutionFwdAlgoPerf_t is {algo; status; float time; size_t memory; determinism; mathType; int reserved[3]} = 48 bytes");

using GetVersionFn = size_t (*)();
using GetCudartVersionFn = size_t (*)();
using GetErrorStringFn = const char* (*)(int status);
using CreateFn = int (*)(Handle*);
using DestroyFn = int (*)(Handle);
using SetStreamFn = int (*)(Handle, Stream);
using CreateTensorDescriptorFn = int (*)(TensorDesc*);
using SetTensor4dDescriptorFn = int (*)(TensorDesc, int format, int dataType, int n, int c, int h, int w);
using DestroyTensorDescriptorFn = int (*)(TensorDesc);
using CreateFilterDescriptorFn = int (*)(FilterDesc*);
using SetFilter4dDescriptorFn = int (*)(FilterDesc, int dataType, int format, int k, int c, int h, int w);
using DestroyFilterDescriptorFn = int (*)(FilterDesc);
using CreateConvolutionDescriptorFn = int (*)(ConvDesc*);
using SetConvolution2dDescriptorFn = int (*)(ConvDesc, int padH, int padW, int strideH, int strideW, int dilationH, int dilationW, int mode,
                                             int computeType);
using SetConvolutionMathTypeFn = int (*)(ConvDesc, int mathType);
using DestroyConvolutionDescriptorFn = int (*)(ConvDesc);
using FindConvolutionForwardAlgorithmFn = int (*)(Handle, TensorDesc x, FilterDesc w, ConvDesc, TensorDesc y, int requested, int* returned,
                                                  FwdAlgoPerf* results);
using GetConvolutionForwardWorkspaceSizeFn = int (*)(Handle, TensorDesc x, FilterDesc w, ConvDesc, TensorDesc y, int algo, size_t* bytes);
using ConvolutionForwardFn = int (*)(Handle, const void* alpha, TensorDesc xDesc, const void* x, FilterDesc wDesc, const void* w, ConvDesc,
                                     int algo, void* workspace, size_t workspaceBytes, const void* beta, TensorDesc yDesc, void* y);

#define ONESTEP_DNN_FUNCTIONS(X)                                        \
  X(GetVersion, cudnnGetVersion)                                        \
  X(GetCudartVersion, cudnnGetCudartVersion)                            \
  X(GetErrorString, cudnnGetErrorString)                                \
  X(Create, cudnnCreate)                                                \
  X(Destroy, cudnnDestroy)                                              \
  X(SetStream, cudnnSetStream)                                          \
  X(CreateTensorDescriptor, cudnnCreateTensorDescriptor)                \
  X(SetTensor4dDescriptor, cudnnSetTensor4dDescriptor)                  \
  X(DestroyTensorDescriptor, cudnnDestroyTensorDescriptor)              \
  X(CreateFilterDescriptor, cudnnCreateFilterDescriptor)                \
  X(SetFilter4dDescriptor, cudnnSetFilter4dDescriptor)                  \
  X(DestroyFilterDescriptor, cudnnDestroyFilterDescriptor)              \
  X(CreateConvolutionDescriptor, cudnnCreateConvolutionDescriptor)      \
  X(SetConvolution2dDescriptor, cudnnSetConvolution2dDescriptor)        \
  X(SetConvolutionMathType, cudnnSetConvolutionMathType)                \
  X(DestroyConvolutionDescriptor, cudnnDestroyConvolutionDescriptor)    \
  X(FindConvolutionForwardAlgorithm, cudnnFindConvolutionForwardAlgorithm) \
  X(GetConvolutionForwardWorkspaceSize, cudnnGetConvolutionForwardWorkspaceSize) \
  X(ConvolutionForward, cudnnConvolutionForward)

}  // namespace onestep_dnn
