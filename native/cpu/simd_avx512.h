// The AVX-512 vector type of the CPU code written once over a vector type (vecmath_simd.h,
// winograd_simd.h, fma_loop_simd.h: what they need of it is listed there), each operation one
// intrinsic. Included by vecmath_avx512.cc, winograd_avx512.cc and gemm_avx512.cc inside their
// ONESTEP_SIMD_BEGIN / END, after the standard headers and <immintrin.h>: internal linkage, so each
// file's copy is compiled for its own target; AVX-512F intrinsics only, which every such target
// has.
#pragma once

#include <cstdint>

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
  static void storeAligned(float* p, vec v) { _mm512_store_ps(p, v); }
  static vec loadAligned(const float* p) { return _mm512_load_ps(p); }
  struct Lanes {
    int64_t n;
    __mmask16 m;
    explicit Lanes(int64_t count) : n(count), m((__mmask16)((1u << count) - 1)) {}
    vec load(const float* p) const { return _mm512_maskz_loadu_ps(m, p); }
    void store(float* p, vec v) const { _mm512_mask_storeu_ps(p, m, v); }
    vec keep(vec v) const { return _mm512_maskz_mov_ps(m, v); }
    vec maxInto(vec acc, vec v) const { return _mm512_mask_max_ps(acc, m, acc, v); }
    // (AVX-512 BW and VL: the vector math's target only)
    vec loadHalf(const uint16_t* p) const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
    void addDoubles(double* dst, vec v) const {
      const __mmask8 lo = (__mmask8)(m & 0xff), hi = (__mmask8)(m >> 8);
      _mm512_mask_storeu_pd(dst, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, dst), _mm512_cvtps_pd(_mm512_castps512_ps256(v))));
      _mm512_mask_storeu_pd(dst + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, dst + 8), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))));
    }
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

}  // namespace
}  // namespace onestep
