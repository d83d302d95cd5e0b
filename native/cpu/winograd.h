// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution pieces: the weight transforms (done once at
// load), and the per-tile input / output transforms (vectorised over channels where the CPU allows).
// F(4x4, 3x3) uses the points 0, +-1, +-2 (Lavin & Gray): B^T rows [4 0 -5 0 1 0], [0 -4 -4 1 1 0],
// [0 4 -4 -1 1 0], [0 -2 -1 2 1 0], [0 2 -1 -2 1 0], [0 4 0 -5 0 1]; G rows [1/4 0 0],
// -1/6 [1 1 1], -1/6 [1 -1 1], [1/24 1/12 1/6], [1/24 -1/12 1/6], [0 0 1]; A^T rows [1 1 1 1 1 0],
// [0 1 -1 2 -2 0], [0 1 1 4 4 0], [0 1 -1 8 -8 1].
#pragma once

#include <cstdint>

#include "../core/tensor.h"
#include "activation.h"

namespace onestep {

// One 4x4 input tile -> 16 transformed values per channel: V = B^T d B.
// src[i*4 + j] points at the C channels of input pixel (i, j) of the tile, or is null (padding).
// dst[xi * dstStride + c] receives V[xi] for channel c.
using WinoInputFn = void (*)(const float* const* src, int64_t C, float* dst, int64_t dstStride);
// 16 products per output channel -> the 2x2 outputs: Y = A^T M A, then + bias, act, + residual.
// m[xi * mStride + c]; out[i*2 + j] / res[i*2 + j] point at the Co channels of output pixel (i, j)
// (null when the pixel lies outside the output).
using WinoOutputFn = void (*)(const float* m, int64_t mStride, int64_t Co, const float* bias, Act act,
                              float* const* out, const float* const* res);

// The input transform for bf16 products: V[xi] of channel c rounded to bf16 (nearest even, as
// floatToBf16) at dst[xi * xiStride + (c / block) * blockStride + c % block] (a bf16 GEMM's A,
// GemmA::bf16, one depth block of `block` channels after another).
using WinoInputBf16Fn = void (*)(const float* const* src, int64_t C, uint16_t* dst, int64_t xiStride, int64_t block,
                                 int64_t blockStride);

struct WinogradKernels {
  const char* name;
  WinoInputFn input;
  WinoOutputFn output;
  WinoInputBf16Fn inputBf16;
  // F(4x4, 3x3) (float32 only), the same signatures: one 6x6 input tile -> 36 values per channel
  // (src[i * 6 + j], dst[xi * dstStride + c]); 36 products -> the 4x4 outputs (out / res[i * 4 + j])
  WinoInputFn input43;
  WinoOutputFn output43;
};

const WinogradKernels& winogradKernels();
const WinogradKernels* winogradKernelsAvx512();  // nullptr where not compiled
const WinogradKernels* winogradKernelsAvx2();    // nullptr where not compiled

// A 3x3 kernel as stored, g [Co, Ci, 3, 3] (F32, F16 or BF16) -> F32 u [16, Co, Ci] = G g G^T.
Tensor winogradWeight(const Tensor& w);
// The same 16 matrices prepacked as float32 panels for the GEMM kernel in use (gemmPrepackB's
// layout, PrepackedB::kernel gemmPrepackKernel()), each winogradF32Stride(Co, Ci, kernel) floats
// apart: F32 [16, stride]. Packed once here, not by every call. tile 4: F(4x4, 3x3)'s 36 matrices
// G4 g G4^T instead, F32 [36, stride].
Tensor winogradWeightPrepacked(const Tensor& w, int tile = 2);
int64_t winogradF32Stride(int64_t Co, int64_t Ci, int kernel);
// The same 16 matrices [Co][Ci] rounded to bf16 and prepacked as bf16 panels (gemmPrepackBf16),
// each winogradBf16Stride(Co, Ci) elements apart: BF16 [16, stride].
Tensor winogradWeightBf16(const Tensor& w);
int64_t winogradBf16Stride(int64_t Co, int64_t Ci);

}  // namespace onestep
