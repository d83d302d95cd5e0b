// The narrow GEMM's kernel on AVX-512 (gemm_narrow.h): zmm accumulators, masked tails, a
// transposing tree for 16 sums at a time. Used only where the CPU reports avx512f (the avx512
// GEMM kernel's narrow variant).
#include "gemm_internal.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f")

#include "gemm_narrow.h"

namespace onestep {
namespace {

struct Avx512Vec {
  using vec = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  // P * N accumulators + N B vectors + the A vector <= 32 registers, P <= 16
  static constexpr int rows(int n) { return n == 1 ? 16 : n == 2 ? 12 : n == 3 ? 8 : n == 4 ? 6 : n <= 6 ? 4 : n == 7 ? 3 : 2; }
  static vec zero() { return _mm512_setzero_ps(); }
  static vec load(const float* p) { return _mm512_loadu_ps(p); }
  static Mask tailMask(int n) { return (Mask)((1u << n) - 1); }
  static vec loadTail(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static void store(float* p, vec v, int n) { _mm512_mask_storeu_ps(p, tailMask(n), v); }
  // lane q: the sum of v[q]'s 16 lanes (45 shuffles and adds for 16 sums, against ~8 each alone)
  static vec sum(vec v[16]) {
    vec s[8];
    // pairs interleaved: each 128-bit block of s[k] holds v[2k] and v[2k+1], two partial sums each
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) s[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
    // quads: each 128-bit block of t[k] holds v[4k .. 4k+3], one partial sum each
    vec t[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __m512d a = _mm512_castps_pd(s[2 * k]), b = _mm512_castps_pd(s[2 * k + 1]);
      t[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    // the four 128-bit blocks added: blocks (0+1, 2+3) of t[0], of t[1] ... then (0+1+2+3): block k
    // of the result is t[k]'s total, lanes in order
    const vec u01 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88), _mm512_shuffle_f32x4(t[0], t[1], 0xDD));
    const vec u23 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], 0x88), _mm512_shuffle_f32x4(t[2], t[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, 0x88), _mm512_shuffle_f32x4(u01, u23, 0xDD));
  }
};
static_assert(Avx512Vec::rows(8) * 8 + 8 + 1 <= 32 && Avx512Vec::rows(3) * 3 + 3 + 1 <= 32, "the narrow tile fits 32 zmm");

}  // namespace

void gemmNarrowAvx512(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c) {
  narrowKernel<Avx512Vec>(A, m, h, N, K, B, c);
}

}  // namespace onestep

ONESTEP_SIMD_END

#endif
