// AVX2 + FMA + F16C vector math (CPUs without AVX-512: AMD Zen 1-3, Intel Haswell to Alder Lake):
// vecmath_simd.h over AVX2 vectors, the AVX-512 file's arithmetic 8 lanes at a time (exp's 2^n as
// two exact power-of-two factors where AVX-512 has scalef), and bf16 rounding. Tails go through
// masked loads and stores (nothing read or written past a row).
#include "vecmath.h"
#include "simd_target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma,f16c")

#include "simd_avx2.h"
#include "vecmath_simd.h"

namespace onestep {
namespace {

using M256 = VecMathSimd<Avx2Vec>;
constexpr VecMath kAvx2 = {"avx2",          M256::actRow,       M256::softmaxRow,   M256::softmaxBlockRow, M256::channelMoments,
                           M256::scaleShiftActRow, M256::layerNormRow, M256::epilogueRows, M256::toBf16};

}  // namespace

const VecMath* vecMathAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx2() { return nullptr; }
}  // namespace onestep
#endif
