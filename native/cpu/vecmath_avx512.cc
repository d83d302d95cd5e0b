// AVX-512 vector math (vecmath_simd.h over AVX-512 vectors: exp by a Cephes-style polynomial,
// ~1 ulp, the activations built on it, softmax rows, norms, the GEMM epilogue) and bf16 rounding.
#include "vecmath.h"
#include "simd_target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f,avx512bw,avx512vl,f16c")

#include "simd_avx512.h"
#include "vecmath_simd.h"

namespace onestep {
namespace {

using M512 = VecMathSimd<Avx512Vec>;
constexpr VecMath kAvx512 = {"avx512",          M512::actRow,       M512::softmaxRow,   M512::softmaxBlockRow, M512::channelMoments,
                             M512::scaleShiftActRow, M512::layerNormRow, M512::epilogueRows, M512::toBf16};

}  // namespace

const VecMath* vecMathAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx512() { return nullptr; }
}  // namespace onestep
#endif
