// AVX2 + FMA Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 8 channels per vector
// (winograd_simd.h over AVX2 vectors; CPUs without AVX-512), tails by masked loads and stores.
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma")

#include "simd_avx2.h"
#include "winograd_simd.h"

namespace onestep {
namespace {

using W256 = WinogradSimd<Avx2Vec>;
constexpr WinogradKernels kAvx2 = {"avx2", W256::input, W256::output, W256::inputBf16, W256::input43, W256::output43};

}  // namespace

const WinogradKernels* winogradKernelsAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const WinogradKernels* winogradKernelsAvx2() { return nullptr; }
}  // namespace onestep
#endif
