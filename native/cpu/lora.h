// LoRA fusion on the CPU: W' = W + sum_i factor_i * up_i @ down_i, in float32, rounded once to
// the output dtype. up [N, r] (or [N, r, 1, 1]), down [r, K...] with K the product of W's trailing dims.
#pragma once

#include <vector>

#include "../core/tensor.h"

namespace onestep {

struct LoraPart {
  Tensor down;
  Tensor up;
  float factor;
};

// Returns a new owned tensor of W's shape in `outDtype` (a float dtype), or writes into `into`
// (a writable tensor of W's shape and dtype `outDtype`, e.g. the previous fusion) and returns it.
// Throws ERR_ONESTEP_LORA on mismatched shapes, before writing anything.
Tensor fuseLora(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType outDtype,
                Tensor* into = nullptr);

}  // namespace onestep
