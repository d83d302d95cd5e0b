// AVX-512 Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 16 channels per vector
// (winograd_simd.h over AVX-512 vectors).
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f")

#include "winograd_simd.h"

namespace onestep {
namespace {

struct Avx512Vec {
  using vec = __m512;
  static constexpr int W = 16;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float x) { return _mm512_set1_ps(x); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) { return _mm512_fnmadd_ps(a, b, c); }
  static void storeAligned(float* p, vec v) { _mm512_store_ps(p, v); }
  static vec loadAligned(const float* p) { return _mm512_load_ps(p); }
  struct Lanes {
    int64_t n;
    __mmask16 m;
    explicit Lanes(int64_t count) : n(count), m((__mmask16)((1u << count) - 1)) {}
    vec load(const float* p) const { return _mm512_maskz_loadu_ps(m, p); }
    void store(float* p, vec v) const { _mm512_mask_storeu_ps(p, m, v); }
  };
  // rounded to bf16 (nearest even, NaN kept quiet: floatToBf16's rule) with AVX-512F integer
  // arithmetic, so any AVX-512 CPU can feed the bf16 kernels (the generic one included)
  static void storeBf16(uint16_t* dst, Lanes l, vec v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    _mm512_mask_cvtepi32_storeu_epi16(dst, l.m, _mm512_srli_epi32(r, 16));
  }
};

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
