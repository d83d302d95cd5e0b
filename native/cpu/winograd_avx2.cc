// AVX2 + FMA Winograd F(2x2, 3x3) and F(4x4, 3x3) tile transforms, 8 channels per vector
// (winograd_simd.h over AVX2 vectors; CPUs without AVX-512), tails by masked loads and stores.
#include "winograd.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma")

#include "winograd_simd.h"

namespace onestep {
namespace {

struct Avx2Vec {
  using vec = __m256;
  static constexpr int W = 8;
  static vec zero() { return _mm256_setzero_ps(); }
  static vec set1(float x) { return _mm256_set1_ps(x); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  static vec fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec fnmadd(vec a, vec b, vec c) { return _mm256_fnmadd_ps(a, b, c); }
  static void storeAligned(float* p, vec v) { _mm256_store_ps(p, v); }
  static vec loadAligned(const float* p) { return _mm256_load_ps(p); }
  // lanes [0, n) of 8: loads zero the rest, stores leave it (nothing read or written past a row's end)
  struct Lanes {
    int64_t n;
    __m256i m;
    explicit Lanes(int64_t count) : n(count), m(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))) {}
    vec load(const float* p) const { return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); }
    void store(float* p, vec v) const {
      if (n == 8) _mm256_storeu_ps(p, v);
      else _mm256_maskstore_ps(p, m, v);
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
    alignas(16) uint16_t h[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(h), _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08)));
    for (int64_t i = 0; i < l.n; ++i) dst[i] = h[i];
  }
};

using W256 = WinogradSimd<Avx2Vec>;
constexpr WinogradKernels kAvx2 = {"avx2", W256::input, W256::output, W256::inputBf16, W256::input43, W256::output43};

}  // namespace

const WinogradKernels* winogradKernelsAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const WinogradKernels* winogradKernelsAvx2() { return nullptr; }
}  // namespace onestep
#endif
