// AVX-512 Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 16 channels per vector
// (winograd_simd.h over AVX-512 vectors).
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f")

#include "simd_avx512.h"
#include "winograd_simd.h"

namespace onestep {
namespace {

using W512 = WinogradSimd<Avx512Vec>;
constexpr WinogradKernels kAvx512 = {"avx512", W512::input, W512::output, W512::inputBf16, W512::input43, W512::output43};

}  // namespace

const WinogradKernels* winogradKernelsAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const WinogradKernels* winogradKernelsAvx512() { return nullptr; }
}  // namespace onestep
#endif
