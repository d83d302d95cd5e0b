// The launchers of each op family (one .cu file each); dispatch.cu routes a node to its launcher.
// A launcher checks what its kernels assume of the node, then launches on `stream`.
#pragma once

#include "common.cuh"

namespace onestep_cuda {

// gemm.cu: linear and conv2d (implicit GEMM on NHWC), tensor cores, fused epilogue
Status launchLinear(const onestep_cuda_node& n, cudaStream_t s);
Status launchConv2d(const onestep_cuda_node& n, cudaStream_t s);
// attention.cu
Status launchAttention(const onestep_cuda_node& n, cudaStream_t s);
// norm.cu
Status launchGroupNorm(const onestep_cuda_node& n, cudaStream_t s);
Status launchLayerNorm(const onestep_cuda_node& n, cudaStream_t s);
// elementwise.cu
Status launchAdd(const onestep_cuda_node& n, cudaStream_t s);
Status launchMul(const onestep_cuda_node& n, cudaStream_t s);
Status launchUnary(const onestep_cuda_node& n, cudaStream_t s);
Status launchGeglu(const onestep_cuda_node& n, cudaStream_t s);
Status launchSchedulerStep(const onestep_cuda_node& n, cudaStream_t s);
// shape.cu
Status launchConcat(const onestep_cuda_node& n, cudaStream_t s);
Status launchUpsample(const onestep_cuda_node& n, cudaStream_t s);
Status launchPermute(const onestep_cuda_node& n, cudaStream_t s);
Status launchSlice(const onestep_cuda_node& n, cudaStream_t s);
Status launchAvgPool(const onestep_cuda_node& n, cudaStream_t s);
Status launchEmbedding(const onestep_cuda_node& n, cudaStream_t s);
Status launchSelectRows(const onestep_cuda_node& n, cudaStream_t s);
Status launchTimestepEmbedding(const onestep_cuda_node& n, cudaStream_t s);
// dispatch.cu: checks a node and calls its launcher
Status runNode(const onestep_cuda_node& n, cudaStream_t s);
// convert.cu
Status launchConvert(void* dst, int dstDtype, const void* src, int srcDtype, int64_t n, cudaStream_t s);

}  // namespace onestep_cuda
