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

#include "vecmath_simd.h"

namespace onestep {
namespace {

struct Avx512Vec {
  using vec = __m512;
  static constexpr int W = 16;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec set1(float x) { return _mm512_set1_ps(x); }
  static vec loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static vec div(vec a, vec b) { return _mm512_div_ps(a, b); }
  static vec min(vec a, vec b) { return _mm512_min_ps(a, b); }
  static vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) { return _mm512_fnmadd_ps(a, b, c); }
  static vec fmsub(vec a, vec b, vec c) { return _mm512_fmsub_ps(a, b, c); }
  static vec roundNearest(vec x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT); }
  static vec scale2(vec p, vec n) { return _mm512_scalef_ps(p, n); }
  static vec abs(vec x) { return _mm512_abs_ps(x); }
  static vec copySign(vec r, vec x) {
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
  }
  static float hmax(vec v) { return _mm512_reduce_max_ps(v); }
  static float hsum(vec v) { return _mm512_reduce_add_ps(v); }
  static double hsumd(vec v) {
    return _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v))) +
           _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  struct Lanes {
    int64_t n;
    __mmask16 m;
    explicit Lanes(int64_t count) : n(count), m((__mmask16)((1u << count) - 1)) {}
    vec load(const float* p) const { return _mm512_maskz_loadu_ps(m, p); }
    void store(float* p, vec v) const { _mm512_mask_storeu_ps(p, m, v); }
    vec keep(vec v) const { return _mm512_maskz_mov_ps(m, v); }
    vec maxInto(vec acc, vec v) const { return _mm512_mask_max_ps(acc, m, acc, v); }
    void addDoubles(double* dst, vec v) const {
      const __mmask8 lo = (__mmask8)(m & 0xff), hi = (__mmask8)(m >> 8);
      _mm512_mask_storeu_pd(dst, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, dst), _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
      _mm512_mask_storeu_pd(dst + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, dst + 8), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))));
    }
  };
};

// float lanes -> bf16 as floatToBf16: + 0x7fff + the kept lowest bit, then the top halves; NaNs
// quieted instead (bit 6 of the bf16 set, no rounding carry into the exponent)
inline __m256i bf16Of(__m512 f) {
  const __m512i x = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(r);
}

void toBf16Avx512(const void* src, DType dtype, int64_t n, uint16_t* dst) {
  if (dtype == DType::BF16) {
    std::memcpy(dst, src, (size_t)n * sizeof(uint16_t));
    return;
  }
  const bool half = dtype == DType::F16;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
    const __m512 f = half ? _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(src) + i))
                          : _mm512_maskz_loadu_ps(m, static_cast<const float*>(src) + i);
    _mm256_mask_storeu_epi16(dst + i, m, bf16Of(f));
  }
}

using M512 = VecMathSimd<Avx512Vec>;
constexpr VecMath kAvx512 = {"avx512",          M512::actRow,       M512::softmaxRow,   M512::softmaxBlockRow, M512::channelMoments,
                             M512::scaleShiftActRow, M512::layerNormRow, M512::epilogueRows, toBf16Avx512};

}  // namespace

const VecMath* vecMathAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx512() { return nullptr; }
}  // namespace onestep
#endif
