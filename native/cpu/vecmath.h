// Vectorised elementwise math (exp, activations, softmax rows), chosen at run time: AVX-512
// where the CPU has it, else AVX2 + FMA + F16C, else the portable scalar code in activation.h.
#pragma once

#include <cstdint>

#include "activation.h"
#include "../core/dtype.h"

namespace onestep {

struct VecMath {
  const char* name;
  // x[i] = act(x[i])
  void (*actRow)(Act act, float* x, int64_t n);
  // x[0..n) -> softmax over the first `visible` entries (scaled by nothing), zeros after them
  void (*softmaxRow)(float* x, int64_t n, int64_t visible);
  // One block of a row of an online softmax. scale * x[0..visible) are scores (the rest masked);
  // *m and *l are the row's running max and sum of exponentials. *m becomes max(*m, max of the
  // scores), x[j] = exp(score j - *m) (0 past visible), *l = *l * c + sum x, and the result is
  // c = exp(old *m - new *m), the factor for what was summed before (0 when nothing was). A block
  // with nothing visible while the row has no max yet leaves zeros and returns 1. scale > 0.
  float (*softmaxBlockRow)(float* x, int64_t n, int64_t visible, float scale, float* m, float* l);
  // Per-channel moments of rows x[r * C + c] (r < rows) about a shift k[c]: sum[c] += sum of
  // (x - k), sq[c] += sum of (x - k)^2; float partial sums over at most 64 rows, added in double.
  void (*channelMoments)(const float* x, int64_t rows, int64_t C, const float* k, double* sum, double* sq);
  // y[c] = act(x[c] * scale[c] + shift[c]) for c < n
  void (*scaleShiftActRow)(const float* x, float* y, const float* scale, const float* shift, int64_t n, Act act);
  // y = (x - mean) / sqrt(var + eps) * gamma + beta over one row of n (two passes for the moments)
  void (*layerNormRow)(const float* x, float* y, const float* gamma, const float* beta, int64_t n, double eps);
  // A GEMM tile's epilogue, one pass over each of its h rows of w: c[i * ldc + j] =
  // act(c * alpha + bias[j]) + res[i * ldr + j] (bias, res: nullptr for none; the scalar order of
  // operations, so every version gives the same floats up to the activation's approximation)
  void (*epilogueRows)(float* c, int64_t ldc, int64_t h, int64_t w, float alpha, const float* bias, Act act, const float* res,
                       int64_t ldr);
  // dst[i] = src[i] (F32, F16 or BF16) as bf16, i < n: rounded to nearest even, NaN quieted
  // (floatToBf16 of the exact float value), bit for bit in every version
  void (*toBf16)(const void* src, DType dtype, int64_t n, uint16_t* dst);
};

const VecMath& vecMath();

// x[i] = act(x[i]), vectorised where the CPU allows.
inline void applyActRow(Act a, float* x, int64_t n) {
  if (a != Act::None) vecMath().actRow(a, x, n);
}
const VecMath* vecMathAvx512();  // nullptr where not compiled
const VecMath* vecMathAvx2();    // nullptr where not compiled

}  // namespace onestep
