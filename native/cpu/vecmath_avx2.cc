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

#include "vecmath_simd.h"

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
    void addDoubles(double* dst, vec v) const {
      alignas(32) double d[8];
      _mm256_store_pd(d, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
      _mm256_store_pd(d + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
      for (int64_t j = 0; j < n; ++j) dst[j] += d[j];
    }
  };
};

// float lanes -> bf16 as floatToBf16: + 0x7fff + the kept lowest bit, then the top halves; NaNs
// quieted instead (bit 6 of the bf16 set, no rounding carry into the exponent)
inline __m128i bf16Of(__m256 f) {
  const __m256i x = _mm256_castps_si256(f);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
  // |x| > inf as integers (both non-negative: a signed compare)
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
  // 8 x 32 -> 8 x 16 (every value < 65536: no saturation)
  const __m256i packed = _mm256_packus_epi32(r, r);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

void toBf16Avx2(const void* src, DType dtype, int64_t n, uint16_t* dst) {
  if (dtype == DType::BF16) {
    std::memcpy(dst, src, (size_t)n * sizeof(uint16_t));
    return;
  }
  const bool half = dtype == DType::F16;
  alignas(16) uint16_t in[8], out[8];
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t w = std::min<int64_t>(8, n - i);
    __m256 f;
    if (half) {
      const uint16_t* p = static_cast<const uint16_t*>(src) + i;
      if (w < 8) {
        std::memset(in, 0, sizeof(in));
        std::memcpy(in, p, (size_t)w * sizeof(uint16_t));
        p = in;
      }
      f = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    } else {
      f = w == 8 ? _mm256_loadu_ps(static_cast<const float*>(src) + i) : loadN(static_cast<const float*>(src) + i, laneMask(w));
    }
    if (w == 8) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), bf16Of(f));
    } else {
      _mm_store_si128(reinterpret_cast<__m128i*>(out), bf16Of(f));
      std::memcpy(dst + i, out, (size_t)w * sizeof(uint16_t));
    }
  }
}

using M256 = VecMathSimd<Avx2Vec>;
constexpr VecMath kAvx2 = {"avx2",          M256::actRow,       M256::softmaxRow,   M256::softmaxBlockRow, M256::channelMoments,
                           M256::scaleShiftActRow, M256::layerNormRow, M256::epilogueRows, toBf16Avx2};

}  // namespace

const VecMath* vecMathAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx2() { return nullptr; }
}  // namespace onestep
#endif
