// The AVX2 + FMA vector type of the CPU code written once over a vector type (vecmath_simd.h,
// winograd_simd.h, fma_loop_simd.h: what they need of it is listed there), each operation one or a
// few intrinsics. Included by vecmath_avx2.cc, winograd_avx2.cc and gemm_avx2.cc inside their
// ONESTEP_SIMD_BEGIN / END, after the standard headers and <immintrin.h>: internal linkage, so each
// file's copy is compiled for its own target; AVX2 and FMA intrinsics only, which every such target
// has.
#pragma once

#include <cstdint>

namespace onestep {
namespace {

inline __m256i laneMask(int64_t n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline __m256 loadN(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }

struct Avx2Vec {
  using vec = __m256;
  static constexpr int W = 8;
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float x) { return _mm256_set1_ps(x); }
  static vec loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  static vec div(vec a, vec b) { return _mm256_div_ps(a, b); }
  static vec min(vec a, vec b) { return _mm256_min_ps(a, b); }
  static vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) { return _mm256_fnmadd_ps(a, b, c); }
  static vec fmsub(vec a, vec b, vec c) { return _mm256_fmsub_ps(a, b, c); }
  static vec roundNearest(vec x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // p * 2^n for n in [-151, 128]: two exact power-of-two factors (2^(n/2) and the rest, each a
  // normal float), so the product is rounded once, as a scalef (denormal results included)
  static vec scale2(vec p, vec nf) {
    const __m256i n = _mm256_cvtps_epi32(nf);
    const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const vec f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    const vec f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
  }
  static vec signBit() { return _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)); }
  static vec abs(vec x) { return _mm256_andnot_ps(signBit(), x); }
  static vec copySign(vec r, vec x) { return _mm256_or_ps(r, _mm256_and_ps(x, signBit())); }
  static float hsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float hmax(vec v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static double hsumd(vec v) {
    const __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s);
  }
  static void storeAligned(float* p, vec v) { _mm256_store_ps(p, v); }
  static vec loadAligned(const float* p) { return _mm256_load_ps(p); }
  // lanes [0, n) of 8: loads zero the rest, stores leave it
  struct Lanes {
    int64_t n;
    __m256i m;
    explicit Lanes(int64_t count) : n(count), m(laneMask(count)) {}
    vec load(const float* p) const { return n == 8 ? _mm256_loadu_ps(p) : loadN(p, m); }
    void store(float* p, vec v) const {
      if (n == 8) _mm256_storeu_ps(p, v);
      else _mm256_maskstore_ps(p, m, v);
    }
    vec keep(vec v) const { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
    vec maxInto(vec acc, vec v) const { return _mm256_max_ps(acc, _mm256_blendv_ps(acc, v, _mm256_castsi256_ps(m))); }
    // (F16C: the vector math's and the GEMM's targets only)
    vec loadHalf(const uint16_t* p) const {
      alignas(16) uint16_t in[8] = {};
      if (n < 8) {
        for (int64_t i = 0; i < n; ++i) in[i] = p[i];
        p = in;
      }
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    void addDoubles(double* dst, vec v) const {
      alignas(32) double d[8];
      _mm256_store_pd(d, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      _mm256_store_pd(d + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
      for (int64_t j = 0; j < n; ++j) dst[j] += d[j];
    }
  };
  // rounded to bf16 (nearest even, NaN kept quiet: floatToBf16's rule) with AVX2 integer
  // arithmetic (the generic bf16 kernel, forced on such CPUs for tests, reads them)
  static void storeBf16(uint16_t* dst, Lanes l, vec v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    // |u| > inf as integers (both non-negative: a signed compare)
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    r = _mm256_srli_epi32(_mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan), 16);
    const __m128i h8 = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));  // (no value over 0xffff)
    if (l.n == 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), h8);
      return;
    }
    alignas(16) uint16_t h[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(h), h8);
    for (int64_t i = 0; i < l.n; ++i) dst[i] = h[i];
  }
};

}  // namespace
}  // namespace onestep
