// AVX2 + FMA Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 8 channels per vector: the
// AVX-512 file's arithmetic in the same order (CPUs without AVX-512), tails by masked loads and
// stores.
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

#include "vecmath.h"

ONESTEP_SIMD_BEGIN("avx2,fma")

namespace onestep {
namespace {

// lanes [0, n) of 8: loads zero the rest, stores leave it (nothing read or written past a row's end)
struct Lanes {
  int64_t n;
  __m256i m;
  explicit Lanes(int64_t count) : n(count), m(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))) {}
  __m256 load(const float* p) const { return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
  void store(float* p, __m256 v) const {
    if (n == 8) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, m, v);
  }
};

// V = B^T d B for 8 channels of a tile: d[i * 4 + j] the input pixel (i, j) -> v[i * 4 + j]
inline void transformTile(const __m256* d, __m256* v) {
  __m256 t[16];
  for (int j = 0; j < 4; ++j) {
    t[0 * 4 + j] = _mm256_sub_ps(d[0 * 4 + j], d[2 * 4 + j]);
    t[1 * 4 + j] = _mm256_add_ps(d[1 * 4 + j], d[2 * 4 + j]);
    t[2 * 4 + j] = _mm256_sub_ps(d[2 * 4 + j], d[1 * 4 + j]);
    t[3 * 4 + j] = _mm256_sub_ps(d[1 * 4 + j], d[3 * 4 + j]);
  }
  for (int i = 0; i < 4; ++i) {
    v[i * 4 + 0] = _mm256_sub_ps(t[i * 4 + 0], t[i * 4 + 2]);
    v[i * 4 + 1] = _mm256_add_ps(t[i * 4 + 1], t[i * 4 + 2]);
    v[i * 4 + 2] = _mm256_sub_ps(t[i * 4 + 2], t[i * 4 + 1]);
    v[i * 4 + 3] = _mm256_sub_ps(t[i * 4 + 1], t[i * 4 + 3]);
  }
}

// the channels [c, c + n) of each of the tile's 16 input pixels (zeros for padding)
inline void loadTile(const float* const* src, int64_t c, const Lanes& m, __m256* d) {
  for (int x = 0; x < 16; ++x) d[x] = src[x] ? m.load(src[x] + c) : _mm256_setzero_ps();
}

void inputAvx2(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; c += 8) {
    const Lanes m(std::min<int64_t>(8, C - c));
    __m256 d[16], v[16];
    loadTile(src, c, m, d);
    transformTile(d, v);
    for (int x = 0; x < 16; ++x) m.store(dst + x * stride + c, v[x]);
  }
}

// 8 floats rounded to bf16 (nearest even, NaN kept quiet: floatToBf16's rule) with AVX2 integer
// arithmetic (the generic bf16 kernel, forced on such CPUs for tests, reads them)
inline void storeBf16(uint16_t* dst, const Lanes& m, __m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
  // |u| > inf as integers (both non-negative: a signed compare)
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
  r = _mm256_srli_epi32(r, 16);
  alignas(16) uint16_t h[8];
  _mm_store_si128(reinterpret_cast<__m128i*>(h), _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08)));
  for (int64_t i = 0; i < m.n; ++i) dst[i] = h[i];
}

void inputBf16Avx2(const float* const* src, int64_t C, uint16_t* dst, int64_t xiStride, int64_t block, int64_t blockStride) {
  for (int64_t c = 0; c < C; c += 8) {  // 8 channels never straddle a block (a multiple of 32)
    const Lanes m(std::min<int64_t>(8, C - c));
    uint16_t* out = dst + (c / block) * blockStride + c % block;
    __m256 d[16], v[16];
    loadTile(src, c, m, d);
    transformTile(d, v);
    for (int x = 0; x < 16; ++x) storeBf16(out + x * xiStride, m, v[x]);
  }
}

void outputAvx2(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                  const float* const* res) {
  alignas(32) float buf[4][8];
  for (int64_t c = 0; c < Co; c += 8) {
    const Lanes m(std::min<int64_t>(8, Co - c));
    __m256 v[16];
    for (int x = 0; x < 16; ++x) v[x] = m.load(mm + x * stride + c);
    __m256 t[8];
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm256_add_ps(_mm256_add_ps(v[j], v[4 + j]), v[8 + j]);
      t[4 + j] = _mm256_sub_ps(_mm256_sub_ps(v[4 + j], v[8 + j]), v[12 + j]);
    }
    const __m256 b = bias ? m.load(bias + c) : _mm256_setzero_ps();
    __m256 y[4];
    for (int i = 0; i < 2; ++i) {
      y[i * 2] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(t[i * 4], t[i * 4 + 1]), t[i * 4 + 2]), b);
      y[i * 2 + 1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(t[i * 4 + 1], t[i * 4 + 2]), t[i * 4 + 3]), b);
    }
    for (int p = 0; p < 4; ++p) {
      if (!out[p]) continue;
      if (act != Act::None) {
        _mm256_store_ps(buf[p], y[p]);
        applyActRow(act, buf[p], m.n);
        y[p] = _mm256_load_ps(buf[p]);
      }
      if (res[p]) y[p] = _mm256_add_ps(y[p], m.load(res[p] + c));
      m.store(out[p] + c, y[p]);
    }
  }
}

// F(4x4, 3x3), 8 channels per vector: t = B^T d along one axis (d(i), t(i, v): winograd.h's B^T)
template <typename In, typename Out>
inline void btRow43(In d, Out t) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), mfour = _mm256_set1_ps(-4.0f), two = _mm256_set1_ps(2.0f);
  const __m256 a = _mm256_fmadd_ps(mfour, d(2), d(4)), b = _mm256_fmadd_ps(mfour, d(1), d(3));
  const __m256 c = _mm256_sub_ps(d(4), d(2)), e = _mm256_mul_ps(two, _mm256_sub_ps(d(3), d(1)));
  t(0, _mm256_fmadd_ps(four, d(0), _mm256_fnmadd_ps(five, d(2), d(4))));
  t(1, _mm256_add_ps(a, b));
  t(2, _mm256_sub_ps(a, b));
  t(3, _mm256_add_ps(c, e));
  t(4, _mm256_sub_ps(c, e));
  t(5, _mm256_fmadd_ps(four, d(1), _mm256_fnmadd_ps(five, d(3), d(5))));
}

void input43Avx2(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; c += 8) {
    const Lanes m(std::min<int64_t>(8, C - c));
    __m256 d[36], t[36];
    for (int x = 0; x < 36; ++x) d[x] = src[x] ? m.load(src[x] + c) : _mm256_setzero_ps();
    for (int j = 0; j < 6; ++j) btRow43([&](int i) { return d[i * 6 + j]; }, [&](int i, __m256 v) { t[i * 6 + j] = v; });
    for (int i = 0; i < 6; ++i)
      btRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, __m256 v) { m.store(dst + (i * 6 + j) * stride + c, v); });
  }
}

// y = A^T m along one axis: 6 values -> 4 (winograd.h's A^T)
template <typename In, typename Out>
inline void atRow43(In v, Out y) {
  const __m256 s12 = _mm256_add_ps(v(1), v(2)), d12 = _mm256_sub_ps(v(1), v(2));
  const __m256 s34 = _mm256_add_ps(v(3), v(4)), d34 = _mm256_sub_ps(v(3), v(4));
  y(0, _mm256_add_ps(_mm256_add_ps(v(0), s12), s34));
  y(1, _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d34, d12));
  y(2, _mm256_fmadd_ps(_mm256_set1_ps(4.0f), s34, s12));
  y(3, _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d34, d12), v(5)));
}

void output43Avx2(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                    const float* const* res) {
  alignas(32) float buf[8];
  for (int64_t c = 0; c < Co; c += 8) {
    const Lanes m(std::min<int64_t>(8, Co - c));
    __m256 t[24], y[16];
    for (int j = 0; j < 6; ++j)
      atRow43([&](int i) { return m.load(mm + (i * 6 + j) * stride + c); }, [&](int i, __m256 v) { t[i * 6 + j] = v; });
    const __m256 b = bias ? m.load(bias + c) : _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i)
      atRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, __m256 v) { y[i * 4 + j] = _mm256_add_ps(v, b); });
    for (int p = 0; p < 16; ++p) {
      if (!out[p]) continue;
      __m256 r = y[p];
      if (act != Act::None) {
        _mm256_store_ps(buf, r);
        applyActRow(act, buf, m.n);
        r = _mm256_load_ps(buf);
      }
      if (res[p]) r = _mm256_add_ps(r, m.load(res[p] + c));
      m.store(out[p] + c, r);
    }
  }
}

const WinogradKernels kAvx2 = {"avx2", inputAvx2, outputAvx2, inputBf16Avx2, input43Avx2, output43Avx2};

}  // namespace

const WinogradKernels* winogradKernelsAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const WinogradKernels* winogradKernelsAvx2() { return nullptr; }
}  // namespace onestep
#endif
