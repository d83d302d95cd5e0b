// CPU kernels of the ops in native/graph/op_table.h (one function per op).
#pragma once

#include <vector>

#include "../graph/graph.h"
#include "gemm.h"

namespace onestep {

#define ONESTEP_CPU_KERNEL_DECL(id, name) \
  void cpu##id(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out);
ONESTEP_OP_TABLE(ONESTEP_CPU_KERNEL_DECL)
#undef ONESTEP_CPU_KERNEL_DECL

// conv2d by Winograd F(2x2, 3x3) or F(4x4, 3x3) (an algorithm the CPU plan picks, cpu_backend.cc):
// in[1] is the transformed kernel's 16 (36) matrices prepacked, [16 or 36, stride]: float32 panels for the GEMM kernel
// w.kernel (winogradWeightPrepacked), or bf16 panels (winogradWeightBf16: bf16 operands), as
// w.dtype says (w.data is not read); stride 1, 3x3 only.
void cpuConv2dWinograd(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w);
// attention with bf16 operands (precision 'bf16'): Q K^T and P V on bf16-rounded values, float32
// scores, softmax and sums
void cpuAttentionBf16(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out);
// linear with its weight prepacked by the CPU plan (in[1] is not read)
void cpuLinearPrepacked(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w);
// conv2d to few output channels (gemmNarrow): in[1] is the kernel as float32 [Co, kh, kw, Ci]
void cpuConv2dNarrow(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out);
// conv2d by GEMM with its kernel prepacked by the CPU plan (`kernel`: the graph's [Co, Ci, kh, kw])
void cpuConv2dPrepacked(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w, const Shape& kernel);

}  // namespace onestep
