// The CPU backend: it runs every op (the fallback of every other backend). Its plan chooses, per
// node, the algorithm and the derived constants its kernel reads (native/graph/derived.h):
//   conv2d  Winograd F(2x2, 3x3) or F(4x4, 3x3) for 3x3 stride-1 convolutions large enough to pay off (policy
//           below); to at most kGemmNarrowMaxN channels from 16 or more, the narrow GEMM (float32,
//           where the kernel has one); else a GEMM: pointwise for 1x1 / stride 1 / unpadded, implicit
//           GEMM otherwise (the receptive field gathered while packing), on the kernel relaid out as
//           [Co, kh, kw, Ci]
//   linear  GEMM on the weight packed once at plan time in the micro-kernel's layout (F16 weights
//           stay F16, converted in registers; ONESTEP_GEMM_PREPACK=0 turns it off), else packed per
//           call (BF16 weights, or F16 ones where the kernel has no half-precision variant)
//   attention  one kernel (packed K and V, query tiles)
//   others  their one kernel
// A graph of precision 'bf16' (GraphSpec::cpuGemmOperand BF16) runs the GEMMs on constant weights
// (linear, conv2d: GEMMs and Winograd's 16 products) and attention's two products with bf16
// operands and float32 accumulation, the weights packed once as bf16 panels (gemm_bf16.cc).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "../graph/graph.h"
#include "../graph/kernels.h"
#include "gemm.h"

namespace onestep {

// When conv2d runs by Winograd: 'auto' (default; env ONESTEP_WINOGRAD) for 3x3 stride-1 convs with
// at least 32 channels in and out on inputs of 32x32 pixels or more (after any fused upsampling;
// below that the direct kernel is as fast and needs no extra weights), by F(4x4, 3x3) from 64x64
// pixels in float32, else F(2x2, 3x3); 'always' for every 3x3 stride-1 conv by F(2x2, 3x3); 'f4x4'
// the same by F(4x4, 3x3) in float32 (F(2x2, 3x3) at bf16); 'never'. Read when a graph is planned.
enum class WinogradPolicy : int { Auto = 0, Always = 1, Never = 2, AlwaysF4 = 3 };
WinogradPolicy winogradPolicy();
void setWinogradPolicy(WinogradPolicy p);

// One node as the CPU runs it.
struct CpuStep {
  Kernel kernel = nullptr;
  const char* algorithm = "";
  // by input index: the derived constant the kernel reads instead of the graph's value (or null)
  std::vector<std::shared_ptr<const Tensor>> replaced;
  bool relayoutWeight = false;  // conv2d by GEMM on a computed (non-constant) kernel: relaid out per run
  bool bf16 = false;            // the graph's cpuGemmOperand is BF16: bf16 operands (constant weights packed as bf16)
  PrepackedB packedB;           // linear / conv2d on a weight packed at plan time (packedB.data set; kept alive by `replaced`)
  bool winograd = false;        // conv2d by Winograd on the transformed kernel packedB (cpuConv2dWinograd)
};

class CpuPlan {
 public:
  // Plans `nodes` (indices into spec.nodes) of a validated graph.
  CpuPlan(const GraphSpec& spec, const std::vector<size_t>& nodes);

  bool has(size_t node) const { return node < steps_.size() && steps_[node].kernel != nullptr; }
  const CpuStep& step(size_t node) const { return steps_[node]; }
  // Runs one planned node: `in` are the graph's inputs of the node (entries may be replaced).
  void run(size_t node, const GraphSpec& spec, std::vector<TensorRef>& in, const TensorRef& out) const;

 private:
  std::vector<CpuStep> steps_;  // by node index
};

}  // namespace onestep
