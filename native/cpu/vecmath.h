// Vectorised elementwise math (exp, activations, softmax rows), chosen at run time: AVX-512
// where the CPU has it, else the portable scalar code in activation.h.
#pragma once

#include <cstdint>

#include "activation.h"

namespace onestep {

struct VecMath {
  const char* name;
  // x[i] = act(x[i])
  void (*actRow)(Act act, float* x, int64_t n);
  // x[0..n) -> softmax over the first `visible` entries (scaled by nothing), zeros after them
  void (*softmaxRow)(float* x, int64_t n, int64_t visible);
};

const VecMath& vecMath();

// x[i] = act(x[i]), vectorised where the CPU allows.
inline void applyActRow(Act a, float* x, int64_t n) {
  if (a != Act::None) vecMath().actRow(a, x, n);
}
const VecMath* vecMathAvx512();  // nullptr where not compiled

}  // namespace onestep
