// AVX-512 exp (Cephes-style polynomial, ~1 ulp), the activations built on it, and softmax rows.
#include "vecmath.h"
#include "simd_target.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f,avx512bw,avx512vl,f16c")

namespace onestep {
namespace {

inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
inline __m512 erf512(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(ax, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
  __m512 y = _mm512_set1_ps(1.061405429f);
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(-1.453152027f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(1.421413741f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(-0.284496736f));
  y = _mm512_fmadd_ps(y, t, _mm512_set1_ps(0.254829592f));
  y = _mm512_mul_ps(y, t);
  const __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), ax), ax));
  const __m512 r = _mm512_fnmadd_ps(y, e, _mm512_set1_ps(1.0f));
  // copy the sign of x
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(r), _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
}

inline __m512 sigmoid512(__m512 x) {
  return _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

inline __m512 act512(Act a, __m512 x) {
  switch (a) {
    case Act::Silu: return _mm512_mul_ps(x, sigmoid512(x));
    case Act::QuickGelu: return _mm512_mul_ps(x, sigmoid512(_mm512_mul_ps(x, _mm512_set1_ps(1.702f))));
    case Act::Gelu: {
      const __m512 e = erf512(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    }
    case Act::Relu: return _mm512_max_ps(x, _mm512_setzero_ps());
    case Act::Sigmoid: return sigmoid512(x);
    case Act::Exp: return exp512(x);
    default: return x;  // handled by the caller
  }
}

void actRowAvx512(Act a, float* x, int64_t n) {
  if (a == Act::None) return;
  if (a == Act::Tanh || a == Act::GeluTanh) {  // rare: exact scalar path
    for (int64_t i = 0; i < n; ++i) x[i] = applyAct(a, x[i]);
    return;
  }
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, act512(a, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, m, act512(a, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void softmaxRowAvx512(float* x, int64_t n, int64_t visible) {
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 16 <= visible; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + j));
  const __mmask16 tail = (__mmask16)((1u << (visible - j)) - 1);
  if (j < visible) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, x + j));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  j = 0;
  for (; j + 16 <= visible; j += 16) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
    _mm512_storeu_ps(x + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < visible) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), m));
    _mm512_mask_storeu_ps(x + j, tail, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(tail, e));
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
  j = 0;
  for (; j + 16 <= visible; j += 16) _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), inv));
  if (j < visible) _mm512_mask_storeu_ps(x + j, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + j), inv));
  for (j = visible; j < n; ++j) x[j] = 0.0f;
}

float softmaxBlockRowAvx512(float* x, int64_t n, int64_t visible, float scale, float* m, float* l) {
  // the max of the raw scores, scaled after (scale > 0)
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t j = 0;
  for (; j + 16 <= visible; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + j));
  const __mmask16 tail = (__mmask16)((1u << (visible - j)) - 1);
  if (j < visible) mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, x + j));
  const float newMax = std::max(*m, _mm512_reduce_max_ps(mx) * scale);
  if (newMax == -std::numeric_limits<float>::infinity()) {
    for (j = 0; j < n; ++j) x[j] = 0.0f;
    return 1.0f;
  }
  const __m512 mv = _mm512_set1_ps(newMax), sv = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  j = 0;
  for (; j + 16 <= visible; j += 16) {
    const __m512 e = exp512(_mm512_fmsub_ps(_mm512_loadu_ps(x + j), sv, mv));
    _mm512_storeu_ps(x + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < visible) {
    const __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, x + j), sv, mv));
    _mm512_mask_storeu_ps(x + j, tail, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(tail, e));
  }
  for (j = visible; j < n; ++j) x[j] = 0.0f;
  const float c = std::exp(*m - newMax);
  *m = newMax;
  *l = *l * c + _mm512_reduce_add_ps(sum);
  return c;
}

void channelMomentsAvx512(const float* x, int64_t rows, int64_t C, const float* k, double* sum, double* sq) {
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t r1 = std::min(rows, r0 + 64);
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 m = C - c >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (C - c)) - 1);
      const __m512 kv = _mm512_maskz_loadu_ps(m, k + c);
      __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
      for (int64_t r = r0; r < r1; ++r) {
        const __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + r * C + c), kv);
        s = _mm512_add_ps(s, d);
        q = _mm512_fmadd_ps(d, d, q);
      }
      const __mmask8 lo = (__mmask8)(m & 0xff), hi = (__mmask8)(m >> 8);
      _mm512_mask_storeu_pd(sum + c, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, sum + c), _mm512_cvtps_pd(_mm512_castps512_ps256(s))));
      _mm512_mask_storeu_pd(sum + c + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, sum + c + 8), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1)))));
      _mm512_mask_storeu_pd(sq + c, lo, _mm512_add_pd(_mm512_maskz_loadu_pd(lo, sq + c), _mm512_cvtps_pd(_mm512_castps512_ps256(q))));
      _mm512_mask_storeu_pd(sq + c + 8, hi, _mm512_add_pd(_mm512_maskz_loadu_pd(hi, sq + c + 8), _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(q), 1)))));
    }
  }
}

void scaleShiftActRowAvx512(const float* x, float* y, const float* scale, const float* shift, int64_t n, Act act) {
  if (act == Act::Tanh || act == Act::GeluTanh) {  // the exact scalar path of actRow
    scaleShiftActRowAvx512(x, y, scale, shift, n, Act::None);
    actRowAvx512(act, y, n);
    return;
  }
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    _mm512_storeu_ps(y + c, act512(act, _mm512_fmadd_ps(_mm512_loadu_ps(x + c), _mm512_loadu_ps(scale + c), _mm512_loadu_ps(shift + c))));
  if (c < n) {
    const __mmask16 m = (__mmask16)((1u << (n - c)) - 1);
    const __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + c), _mm512_maskz_loadu_ps(m, scale + c), _mm512_maskz_loadu_ps(m, shift + c));
    _mm512_mask_storeu_ps(y + c, m, act512(act, v));
  }
}

// float lanes over the row (at most a few thousand values: the text encoders' and UNets' widths),
// the lanes added in double; the deviations from the (float) mean in a second pass, whose sum also
// corrects the mean (two-pass with correction: the mean's rounding and the first pass's float sums
// do not reach the result where |mean| is large against the deviation)
void layerNormRowAvx512(const float* x, float* y, const float* gamma, const float* beta, int64_t n, double eps) {
  const int64_t full = n / 16 * 16;
  const __mmask16 tail = (__mmask16)((1u << (n - full)) - 1);
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= full; c += 32) {
    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + c));
    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + c + 16));
  }
  for (; c < full; c += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + c));
  if (tail) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, x + full));
  auto sumd = [](__m512 v) {
    return _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v))) +
           _mm512_reduce_add_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  };
  const float m0 = (float)((sumd(s0) + sumd(s1)) / (double)n);
  const __m512 m0v = _mm512_set1_ps(m0);
  __m512 d0s = _mm512_setzero_ps(), d1s = _mm512_setzero_ps(), q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
  for (c = 0; c + 32 <= full; c += 32) {
    const __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + c), m0v), d1 = _mm512_sub_ps(_mm512_loadu_ps(x + c + 16), m0v);
    d0s = _mm512_add_ps(d0s, d0);
    d1s = _mm512_add_ps(d1s, d1);
    q0 = _mm512_fmadd_ps(d0, d0, q0);
    q1 = _mm512_fmadd_ps(d1, d1, q1);
  }
  for (; c < full; c += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + c), m0v);
    d0s = _mm512_add_ps(d0s, d);
    q0 = _mm512_fmadd_ps(d, d, q0);
  }
  if (tail) {
    const __m512 d = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, x + full), m0v);
    d1s = _mm512_add_ps(d1s, d);
    q1 = _mm512_fmadd_ps(d, d, q1);
  }
  // mean = m0 + delta; sum (x - mean)^2 = sum (x - m0)^2 - n delta^2
  const double delta = (sumd(d0s) + sumd(d1s)) / (double)n;
  const double var = std::max(0.0, (sumd(q0) + sumd(q1)) / (double)n - delta * delta);
  // x - m0 is exact where x is near m0; delta, small, is subtracted after (a float mean m0 + delta
  // would be off by half an ulp of the mean: 5e-4 at 1e4, against deviations of a few units)
  const __m512 dv = _mm512_set1_ps((float)delta);
  const __m512 rv = _mm512_set1_ps((float)(1.0 / std::sqrt(var + eps)));
  for (c = 0; c < full; c += 16) {
    const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), m0v), dv), rv);
    _mm512_storeu_ps(y + c, _mm512_fmadd_ps(v, _mm512_loadu_ps(gamma + c), _mm512_loadu_ps(beta + c)));
  }
  if (tail) {
    const __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + full), m0v), dv), rv);
    _mm512_mask_storeu_ps(y + full, tail, _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(tail, gamma + full), _mm512_maskz_loadu_ps(tail, beta + full)));
  }
}

// 16 columns of a row under mask m: the load, alpha, bias, activation, residual and store in registers
inline void epilogueVec(float* row, const float* bias, const float* r, __mmask16 m, __m512 alpha, bool scale, Act act) {
  __m512 v = _mm512_maskz_loadu_ps(m, row);
  if (scale) v = _mm512_mul_ps(v, alpha);
  if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias));
  v = act512(act, v);
  if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r));
  _mm512_mask_storeu_ps(row, m, v);
}

void epilogueRowsAvx512(float* c, int64_t ldc, int64_t h, int64_t w, float alpha, const float* bias, Act act, const float* res,
                        int64_t ldr) {
  if (act == Act::Tanh || act == Act::GeluTanh) {  // the exact scalar path of actRow, after the rest
    for (int64_t i = 0; i < h; ++i) {
      float* row = c + i * ldc;
      epilogueRowsAvx512(row, ldc, 1, w, alpha, bias, Act::None, nullptr, 0);
      actRowAvx512(act, row, w);
      if (res)
        for (int64_t j = 0; j < w; ++j) row[j] += res[i * ldr + j];
    }
    return;
  }
  const bool scale = alpha != 1.0f;
  const __m512 va = _mm512_set1_ps(alpha);
  for (int64_t i = 0; i < h; ++i) {
    float* row = c + i * ldc;
    const float* r = res ? res + i * ldr : nullptr;
    int64_t j = 0;
    for (; j + 16 <= w; j += 16) epilogueVec(row + j, bias ? bias + j : nullptr, r ? r + j : nullptr, (__mmask16)0xffff, va, scale, act);
    if (j < w) epilogueVec(row + j, bias ? bias + j : nullptr, r ? r + j : nullptr, (__mmask16)((1u << (w - j)) - 1), va, scale, act);
  }
}

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

const VecMath kAvx512 = {"avx512",          actRowAvx512, softmaxRowAvx512, softmaxBlockRowAvx512, channelMomentsAvx512, scaleShiftActRowAvx512,
                         layerNormRowAvx512, epilogueRowsAvx512, toBf16Avx512};

}  // namespace

const VecMath* vecMathAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const VecMath* vecMathAvx512() { return nullptr; }
}  // namespace onestep
#endif
