// Elementwise functions shared by the fused epilogues and the unary op.
#pragma once

#include <cmath>
#include <cstdint>

#include "../graph/op_defs.h"  // Act

namespace onestep {


inline float applyAct(Act a, float x) {
  switch (a) {
    case Act::None: return x;
    case Act::Silu: return x / (1.0f + std::exp(-x));
    case Act::Gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Act::GeluTanh: {
      const float c = 0.7978845608028654f;  // sqrt(2/pi)
      return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
    }
    case Act::QuickGelu: return x / (1.0f + std::exp(-1.702f * x));
    case Act::Relu: return x > 0.0f ? x : 0.0f;
    case Act::Tanh: return std::tanh(x);
    case Act::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Act::Exp: return std::exp(x);
  }
  return x;
}


}  // namespace onestep
