// AVX2 + FMA + F16C vector math (CPUs without AVX-512: AMD Zen 1-3, Intel Haswell to Alder
// Lake): the same polynomials and orders of operations as vecmath_avx512.cc, 8 lanes at a time.
// Tails go through masked loads and stores (nothing read or written past a row).
#include "vecmath.h"
#include "simd_target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma,f16c")

namespace onestep {
namespace {

inline __m256i laneMask(int64_t n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline __m256 loadN(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
inline void storeN(float* p, __m256i m, __m256 v) { _mm256_maskstore_ps(p, m, v); }
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// the 8 lanes summed in double
inline double hsumd(__m256 v) {
  const __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

// p * 2^n for n in [-151, 128]: two exact power-of-two factors (2^(n/2) and the rest, each a
// normal float), so the product is rounded once, as a scalef (denormal results included)
inline __m256 scale2(__m256 p, __m256i n) {
  const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
  const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
  const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(88.7f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  return scale2(p, _mm256_cvtps_epi32(n));
}

inline __m256 signBit() { return _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u)); }

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
inline __m256 erf256(__m256 x) {
  const __m256 ax = _mm256_andnot_ps(signBit(), x);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(ax, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
  __m256 y = _mm256_set1_ps(1.061405429f);
  y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-1.453152027f));
  y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(1.421413741f));
  y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-0.284496736f));
  y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(0.254829592f));
  y = _mm256_mul_ps(y, t);
  const __m256 e = exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), ax), ax));
  const __m256 r = _mm256_fnmadd_ps(y, e, _mm256_set1_ps(1.0f));
  return _mm256_or_ps(r, _mm256_and_ps(x, signBit()));  // the sign of x
}

inline __m256 sigmoid256(__m256 x) {
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

inline __m256 act256(Act a, __m256 x) {
  switch (a) {
    case Act::Silu: return _mm256_mul_ps(x, sigmoid256(x));
    case Act::QuickGelu: return _mm256_mul_ps(x, sigmoid256(_mm256_mul_ps(x, _mm256_set1_ps(1.702f))));
    case Act::Gelu: {
      const __m256 e = erf256(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    }
    case Act::Relu: return _mm256_max_ps(x, _mm256_setzero_ps());
    case Act::Sigmoid: return sigmoid256(x);
    case Act::Exp: return exp256(x);
    default: return x;  // handled by the caller
  }
}

void actRowAvx2(Act a, float* x, int64_t n) {
  if (a == Act::None) return;
  if (a == Act::Tanh || a == Act::GeluTanh) {  // rare: exact scalar path
    for (int64_t i = 0; i < n; ++i) x[i] = applyAct(a, x[i]);
    return;
  }
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, act256(a, _mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = laneMask(n - i);
    storeN(x + i, m, act256(a, loadN(x + i, m)));
  }
}

// the max of x[0..visible) (-inf for none)
inline float rowMax(const float* x, int64_t visible) {
  __m256 mx = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 8 <= visible; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(x + j));
  if (j < visible) {
    const __m256i m = laneMask(visible - j);
    mx = _mm256_max_ps(mx, _mm256_blendv_ps(mx, loadN(x + j, m), _mm256_castsi256_ps(m)));
  }
  return hmax(mx);
}

// x[j] = exp(x[j] * sv - mv) for j < visible, returning their sum
inline float expRow(float* x, int64_t visible, __m256 sv, __m256 mv) {
  __m256 sum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= visible; j += 8) {
    const __m256 e = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(x + j), sv, mv));
    _mm256_storeu_ps(x + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (j < visible) {
    const __m256i m = laneMask(visible - j);
    const __m256 e = _mm256_and_ps(exp256(_mm256_fmsub_ps(loadN(x + j, m), sv, mv)), _mm256_castsi256_ps(m));
    storeN(x + j, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  return hsum(sum);
}

void softmaxRowAvx2(float* x, int64_t n, int64_t visible) {
  const float mx = rowMax(x, visible);
  const float total = expRow(x, visible, _mm256_set1_ps(1.0f), _mm256_set1_ps(mx));
  const __m256 inv = _mm256_set1_ps(1.0f / total);
  int64_t j = 0;
  for (; j + 8 <= visible; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), inv));
  if (j < visible) {
    const __m256i m = laneMask(visible - j);
    storeN(x + j, m, _mm256_mul_ps(loadN(x + j, m), inv));
  }
  for (j = visible; j < n; ++j) x[j] = 0.0f;
}

float softmaxBlockRowAvx2(float* x, int64_t n, int64_t visible, float scale, float* m, float* l) {
  // the max of the raw scores, scaled after (scale > 0)
  const float newMax = std::max(*m, rowMax(x, visible) * scale);
  if (newMax == -std::numeric_limits<float>::infinity()) {
    for (int64_t j = 0; j < n; ++j) x[j] = 0.0f;
    return 1.0f;
  }
  const float sum = expRow(x, visible, _mm256_set1_ps(scale), _mm256_set1_ps(newMax));
  for (int64_t j = visible; j < n; ++j) x[j] = 0.0f;
  const float c = std::exp(*m - newMax);
  *m = newMax;
  *l = *l * c + sum;
  return c;
}

void channelMomentsAvx2(const float* x, int64_t rows, int64_t C, const float* k, double* sum, double* sq) {
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t r1 = std::min(rows, r0 + 64);
    for (int64_t c = 0; c < C; c += 8) {
      const int64_t w = std::min<int64_t>(8, C - c);
      const __m256i m = laneMask(w);
      const __m256 kv = loadN(k + c, m);
      __m256 s = _mm256_setzero_ps(), q = _mm256_setzero_ps();
      for (int64_t r = r0; r < r1; ++r) {
        const __m256 d = _mm256_sub_ps(w == 8 ? _mm256_loadu_ps(x + r * C + c) : loadN(x + r * C + c, m), kv);
        s = _mm256_add_ps(s, d);
        q = _mm256_fmadd_ps(d, d, q);
      }
      alignas(32) double sd[8], qd[8];
      _mm256_store_pd(sd, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
      _mm256_store_pd(sd + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
      _mm256_store_pd(qd, _mm256_cvtps_pd(_mm256_castps256_ps128(q)));
      _mm256_store_pd(qd + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(q, 1)));
      for (int64_t j = 0; j < w; ++j) {
        sum[c + j] += sd[j];
        sq[c + j] += qd[j];
      }
    }
  }
}

void scaleShiftActRowAvx2(const float* x, float* y, const float* scale, const float* shift, int64_t n, Act act) {
  if (act == Act::Tanh || act == Act::GeluTanh) {  // the exact scalar path of actRow
    scaleShiftActRowAvx2(x, y, scale, shift, n, Act::None);
    actRowAvx2(act, y, n);
    return;
  }
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    _mm256_storeu_ps(y + c, act256(act, _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(scale + c), _mm256_loadu_ps(shift + c))));
  if (c < n) {
    const __m256i m = laneMask(n - c);
    storeN(y + c, m, act256(act, _mm256_fmadd_ps(loadN(x + c, m), loadN(scale + c, m), loadN(shift + c, m))));
  }
}

// as layerNormRowAvx512: float lanes added in double, then the deviations from that (float) mean
// in a second pass, whose sum corrects the mean
void layerNormRowAvx2(const float* x, float* y, const float* gamma, const float* beta, int64_t n, double eps) {
  const int64_t full = n / 8 * 8;
  const __m256i tail = laneMask(n - full);
  const bool hasTail = full < n;
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 16 <= full; c += 16) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + c));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + c + 8));
  }
  for (; c < full; c += 8) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + c));
  if (hasTail) s1 = _mm256_add_ps(s1, loadN(x + full, tail));
  const float m0 = (float)((hsumd(s0) + hsumd(s1)) / (double)n);
  const __m256 m0v = _mm256_set1_ps(m0);
  __m256 d0s = _mm256_setzero_ps(), d1s = _mm256_setzero_ps(), q0 = _mm256_setzero_ps(), q1 = _mm256_setzero_ps();
  for (c = 0; c + 16 <= full; c += 16) {
    const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + c), m0v), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + c + 8), m0v);
    d0s = _mm256_add_ps(d0s, d0);
    d1s = _mm256_add_ps(d1s, d1);
    q0 = _mm256_fmadd_ps(d0, d0, q0);
    q1 = _mm256_fmadd_ps(d1, d1, q1);
  }
  for (; c < full; c += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), m0v);
    d0s = _mm256_add_ps(d0s, d);
    q0 = _mm256_fmadd_ps(d, d, q0);
  }
  if (hasTail) {
    const __m256 d = _mm256_and_ps(_mm256_sub_ps(loadN(x + full, tail), m0v), _mm256_castsi256_ps(tail));
    d1s = _mm256_add_ps(d1s, d);
    q1 = _mm256_fmadd_ps(d, d, q1);
  }
  const double delta = (hsumd(d0s) + hsumd(d1s)) / (double)n;
  const double var = std::max(0.0, (hsumd(q0) + hsumd(q1)) / (double)n - delta * delta);
  const __m256 dv = _mm256_set1_ps((float)delta);
  const __m256 rv = _mm256_set1_ps((float)(1.0 / std::sqrt(var + eps)));
  for (c = 0; c < full; c += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), m0v), dv), rv);
    _mm256_storeu_ps(y + c, _mm256_fmadd_ps(v, _mm256_loadu_ps(gamma + c), _mm256_loadu_ps(beta + c)));
  }
  if (hasTail) {
    const __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(loadN(x + full, tail), m0v), dv), rv);
    storeN(y + full, tail, _mm256_fmadd_ps(v, loadN(gamma + full, tail), loadN(beta + full, tail)));
  }
}

// 8 columns of a row (the first w of them): the load, alpha, bias, activation, residual and store
// in registers
inline void epilogueVec(float* row, const float* bias, const float* r, int64_t w, __m256 alpha, bool scale, Act act) {
  const __m256i m = laneMask(w);
  __m256 v = w == 8 ? _mm256_loadu_ps(row) : loadN(row, m);
  if (scale) v = _mm256_mul_ps(v, alpha);
  if (bias) v = _mm256_add_ps(v, w == 8 ? _mm256_loadu_ps(bias) : loadN(bias, m));
  v = act256(act, v);
  if (r) v = _mm256_add_ps(v, w == 8 ? _mm256_loadu_ps(r) : loadN(r, m));
  if (w == 8) _mm256_storeu_ps(row, v);
  else storeN(row, m, v);
}

void epilogueRowsAvx2(float* c, int64_t ldc, int64_t h, int64_t w, float alpha, const float* bias, Act act, const float* res,
                      int64_t ldr) {
  if (act == Act::Tanh || act == Act::GeluTanh) {  // the exact scalar path of actRow, after the rest
    for (int64_t i = 0; i < h; ++i) {
      float* row = c + i * ldc;
      epilogueRowsAvx2(row, ldc, 1, w, alpha, bias, Act::None, nullptr, 0);
      actRowAvx2(act, row, w);
      if (res)
        for (int64_t j = 0; j < w; ++j) row[j] += res[i * ldr + j];
    }
    return;
  }
  const bool scale = alpha != 1.0f;
  const __m256 va = _mm256_set1_ps(alpha);
  for (int64_t i = 0; i < h; ++i) {
    float* row = c + i * ldc;
    const float* r = res ? res + i * ldr : nullptr;
    for (int64_t j = 0; j < w; j += 8)
      epilogueVec(row + j, bias ? bias + j : nullptr, r ? r + j : nullptr, std::min<int64_t>(8, w - j), va, scale, act);
  }
}

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

const VecMath kAvx2 = {"avx2",          actRowAvx2, softmaxRowAvx2, softmaxBlockRowAvx2, channelMomentsAvx2, scaleShiftActRowAvx2,
                       layerNormRowAvx2, epilogueRowsAvx2, toBf16Avx2};

}  // namespace

const VecMath* vecMathAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx2() { return nullptr; }
}  // namespace onestep
#endif
