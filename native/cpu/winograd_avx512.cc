// AVX-512 Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 16 channels per vector.
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

#include "vecmath.h"

ONESTEP_SIMD_BEGIN("avx512f")

namespace onestep {
namespace {

// V = B^T d B for 16 channels of a tile: d[i * 4 + j] the input pixel (i, j) -> v[i * 4 + j]
inline void transformTile(const __m512* d, __m512* v) {
  __m512 t[16];
  for (int j = 0; j < 4; ++j) {
    t[0 * 4 + j] = _mm512_sub_ps(d[0 * 4 + j], d[2 * 4 + j]);
    t[1 * 4 + j] = _mm512_add_ps(d[1 * 4 + j], d[2 * 4 + j]);
    t[2 * 4 + j] = _mm512_sub_ps(d[2 * 4 + j], d[1 * 4 + j]);
    t[3 * 4 + j] = _mm512_sub_ps(d[1 * 4 + j], d[3 * 4 + j]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i * 4 + 0] = _mm512_sub_ps(t[i * 4 + 0], t[i * 4 + 2]);
    v[i * 4 + 1] = _mm512_add_ps(t[i * 4 + 1], t[i * 4 + 2]);
    v[i * 4 + 2] = _mm512_sub_ps(t[i * 4 + 2], t[i * 4 + 1]);
    v[i * 4 + 3] = _mm512_sub_ps(t[i * 4 + 1], t[i * 4 + 3]);
  }
}

// the 16 channels [c, c + n) of each of the tile's 16 input pixels (zeros for padding)
inline void loadTile(const float* const* src, int64_t c, __mmask16 m, __m512* d) {
  for (int x = 0; x < 16; ++x) d[x] = src[x] ? _mm512_maskz_loadu_ps(m, src[x] + c) : _mm512_setzero_ps();
}

void inputAvx512(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; c += 16) {
    const int64_t n = std::min<int64_t>(16, C - c);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 d[16], v[16];
    loadTile(src, c, m, d);
    transformTile(d, v);
    for (int x = 0; x < 16; ++x) _mm512_mask_storeu_ps(dst + x * stride + c, m, v[x]);
  }
}

// 16 floats rounded to bf16 (nearest even, NaN kept quiet: floatToBf16's rule) with AVX-512F
// integer arithmetic, so any AVX-512 CPU can feed the bf16 kernels (the generic one included)
inline void storeBf16(uint16_t* dst, __mmask16 m, __m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
  _mm512_mask_cvtepi32_storeu_epi16(dst, m, _mm512_srli_epi32(r, 16));
}

void inputBf16Avx512(const float* const* src, int64_t C, uint16_t* dst, int64_t xiStride, int64_t block, int64_t blockStride) {
  for (int64_t c = 0; c < C; c += 16) {  // 16 channels never straddle a block (a multiple of 32)
    const int64_t n = std::min<int64_t>(16, C - c);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    uint16_t* out = dst + (c / block) * blockStride + c % block;
    __m512 d[16], v[16];
    loadTile(src, c, m, d);
    transformTile(d, v);
    for (int x = 0; x < 16; ++x) storeBf16(out + x * xiStride, m, v[x]);
  }
}

void outputAvx512(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                  const float* const* res) {
  alignas(64) float buf[4][16];
  for (int64_t c = 0; c < Co; c += 16) {
    const int64_t n = std::min<int64_t>(16, Co - c);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 v[16];
    for (int x = 0; x < 16; ++x) v[x] = _mm512_maskz_loadu_ps(m, mm + x * stride + c);
    __m512 t[8];
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm512_add_ps(_mm512_add_ps(v[j], v[4 + j]), v[8 + j]);
      t[4 + j] = _mm512_sub_ps(_mm512_sub_ps(v[4 + j], v[8 + j]), v[12 + j]);
    }
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c) : _mm512_setzero_ps();
    __m512 y[4];
    for (int i = 0; i < 2; ++i) {
      y[i * 2] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(t[i * 4], t[i * 4 + 1]), t[i * 4 + 2]), b);
      y[i * 2 + 1] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(t[i * 4 + 1], t[i * 4 + 2]), t[i * 4 + 3]), b);
    }
    for (int p = 0; p < 4; ++p) {
      if (!out[p]) continue;
      if (act != Act::None) {
        _mm512_store_ps(buf[p], y[p]);
        applyActRow(act, buf[p], n);
        y[p] = _mm512_load_ps(buf[p]);
      }
      if (res[p]) y[p] = _mm512_add_ps(y[p], _mm512_maskz_loadu_ps(m, res[p] + c));
      _mm512_mask_storeu_ps(out[p] + c, m, y[p]);
    }
  }
}

// F(4x4, 3x3), 16 channels per vector: t = B^T d along one axis (d(i), t(i, v): winograd.h's B^T)
template <typename In, typename Out>
inline void btRow43(In d, Out t) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), mfour = _mm512_set1_ps(-4.0f), two = _mm512_set1_ps(2.0f);
  const __m512 a = _mm512_fmadd_ps(mfour, d(2), d(4)), b = _mm512_fmadd_ps(mfour, d(1), d(3));
  const __m512 c = _mm512_sub_ps(d(4), d(2)), e = _mm512_mul_ps(two, _mm512_sub_ps(d(3), d(1)));
  t(0, _mm512_fmadd_ps(four, d(0), _mm512_fnmadd_ps(five, d(2), d(4))));
  t(1, _mm512_add_ps(a, b));
  t(2, _mm512_sub_ps(a, b));
  t(3, _mm512_add_ps(c, e));
  t(4, _mm512_sub_ps(c, e));
  t(5, _mm512_fmadd_ps(four, d(1), _mm512_fnmadd_ps(five, d(3), d(5))));
}

void input43Avx512(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; c += 16) {
    const int64_t n = std::min<int64_t>(16, C - c);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 d[36], t[36];
    for (int x = 0; x < 36; ++x) d[x] = src[x] ? _mm512_maskz_loadu_ps(m, src[x] + c) : _mm512_setzero_ps();
    for (int j = 0; j < 6; ++j) btRow43([&](int i) { return d[i * 6 + j]; }, [&](int i, __m512 v) { t[i * 6 + j] = v; });
    for (int i = 0; i < 6; ++i)
      btRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, __m512 v) { _mm512_mask_storeu_ps(dst + (i * 6 + j) * stride + c, m, v); });
  }
}

// y = A^T m along one axis: 6 values -> 4 (winograd.h's A^T)
template <typename In, typename Out>
inline void atRow43(In v, Out y) {
  const __m512 s12 = _mm512_add_ps(v(1), v(2)), d12 = _mm512_sub_ps(v(1), v(2));
  const __m512 s34 = _mm512_add_ps(v(3), v(4)), d34 = _mm512_sub_ps(v(3), v(4));
  y(0, _mm512_add_ps(_mm512_add_ps(v(0), s12), s34));
  y(1, _mm512_fmadd_ps(_mm512_set1_ps(2.0f), d34, d12));
  y(2, _mm512_fmadd_ps(_mm512_set1_ps(4.0f), s34, s12));
  y(3, _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), v(5)));
}

void output43Avx512(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                    const float* const* res) {
  alignas(64) float buf[16];
  for (int64_t c = 0; c < Co; c += 16) {
    const int64_t n = std::min<int64_t>(16, Co - c);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    __m512 t[24], y[16];
    for (int j = 0; j < 6; ++j)
      atRow43([&](int i) { return _mm512_maskz_loadu_ps(m, mm + (i * 6 + j) * stride + c); }, [&](int i, __m512 v) { t[i * 6 + j] = v; });
    const __m512 b = bias ? _mm512_maskz_loadu_ps(m, bias + c) : _mm512_setzero_ps();
    for (int i = 0; i < 4; ++i)
      atRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, __m512 v) { y[i * 4 + j] = _mm512_add_ps(v, b); });
    for (int p = 0; p < 16; ++p) {
      if (!out[p]) continue;
      __m512 r = y[p];
      if (act != Act::None) {
        _mm512_store_ps(buf, r);
        applyActRow(act, buf, n);
        r = _mm512_load_ps(buf);
      }
      if (res[p]) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m, res[p] + c));
      _mm512_mask_storeu_ps(out[p] + c, m, r);
    }
  }
}

const WinogradKernels kAvx512 = {"avx512", inputAvx512, outputAvx512, inputBf16Avx512, input43Avx512, output43Avx512};

}  // namespace

const WinogradKernels* winogradKernelsAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const WinogradKernels* winogradKernelsAvx512() { return nullptr; }
}  // namespace onestep
#endif
