// The narrow GEMM's kernel on AVX2 + FMA (gemm_narrow.h): ymm accumulators (16 registers, so
// fewer rows per group), masked-load tails, a horizontal-add tree for 8 sums at a time. Used only
// where the CPU reports avx2 and fma (the avx2 GEMM kernel's narrow variant).
#include "gemm_internal.h"
#include "simd_target.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma")

#include "gemm_narrow.h"

namespace onestep {
namespace {

struct Avx2Vec {
  using vec = __m256;
  using Mask = __m256i;
  static constexpr int W = 8;
  // P * N accumulators + N B vectors + the A vector <= 16 registers
  static constexpr int rows(int n) { return n == 1 ? 12 : n == 2 ? 6 : n == 3 ? 4 : n <= 5 ? 2 : 1; }
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const float* p) { return _mm256_loadu_ps(p); }
  static Mask tailMask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static vec loadTail(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static void store(float* p, vec v, int n) {
    if (n == W) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tailMask(n), v);
  }
  // lane q: the sum of v[q]'s 8 lanes
  static vec sum(vec v[8]) {
    // [v0 v1 v2 v3 | v0 v1 v2 v3] partial sums over each 128-bit half, the same for v4..v7
    const vec h0123 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const vec h4567 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
  }
};
// (8 columns need 17, and a tail step's mask takes one more: the compiler spills one or two
// there, a cost of speed only)
static_assert(Avx2Vec::rows(8) * 8 + 8 + 1 <= 17 && Avx2Vec::rows(3) * 3 + 3 + 1 <= 16, "the narrow tile fits 16 ymm, or nearly");

}  // namespace

void gemmNarrowAvx2(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c) {
  narrowKernel<Avx2Vec>(A, m, h, N, K, B, c);
}

}  // namespace onestep

ONESTEP_SIMD_END

#endif
