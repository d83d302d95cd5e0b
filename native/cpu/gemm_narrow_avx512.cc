// AVX-512 kernel of the narrow GEMM (gemmNarrow: at most kGemmNarrowMaxN output columns, a
// convolution's last layer to 3 or 4 channels). The panel kernels fill 32 columns per tile, so 3
// used ones leave 9 % of each FMA doing work; this one vectorizes along the depth instead: a group
// of rows times all N columns in zmm accumulators, each A vector loaded once for the N columns, each
// B vector once for the rows, and one horizontal sum per output at the end. Compiled for AVX-512
// through a target pragma; used only where the CPU reports avx512f (the avx512 GEMM kernel's).
#include "gemm_internal.h"
#include "simd_target.h"

#include <algorithm>
#include <vector>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f")

namespace onestep {
namespace {

// Lane q of the result: the sum of v[q]'s 16 lanes (a transposing tree: 45 shuffles and adds for
// 16 sums, against ~8 each alone).
inline __m512 sum16(__m512 v[16]) {
  __m512 s[8];
  // pairs interleaved: each 128-bit block of s[k] holds v[2k] and v[2k+1], two partial sums each
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) s[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
  // quads: each 128-bit block of t[k] holds v[4k .. 4k+3], one partial sum each
  __m512 t[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512d a = _mm512_castps_pd(s[2 * k]), b = _mm512_castps_pd(s[2 * k + 1]);
    t[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  // the four 128-bit blocks added: blocks (0+1, 2+3) of t[0], of t[1] ...
  const __m512 u01 = _mm512_add_ps(_mm512_shuffle_f32x4(t[0], t[1], 0x88), _mm512_shuffle_f32x4(t[0], t[1], 0xDD));
  const __m512 u23 = _mm512_add_ps(_mm512_shuffle_f32x4(t[2], t[3], 0x88), _mm512_shuffle_f32x4(t[2], t[3], 0xDD));
  // ... then (0+1+2+3): block k of the result is t[k]'s total, lanes in order
  return _mm512_add_ps(_mm512_shuffle_f32x4(u01, u23, 0x88), _mm512_shuffle_f32x4(u01, u23, 0xDD));
}

// A run of depths for the group's rows: `run` depths from `off` on, contiguous in each row (null:
// zeros, a convolution's padding; or a row past the group's).
template <int P>
struct NarrowRun {
  const float* r[P];
  int64_t run, off;
};

// Rows [m, m+h) (h <= P) x the N columns: c[i * ldc + j] = sum_k A[m+i][k] * B[j][k]. The runs
// are gathered first (a convolution's taps), then the products run in this function's own loops:
// the P x N accumulators, N B vectors and one A vector stay in the 32 registers (kRowsFor).
template <int N, int P>
void narrowRows(const GemmA& A, int64_t m, int64_t h, int64_t K, const float* B, float* c, int64_t ldc, std::vector<NarrowRun<P>>& runs) {
  runs.clear();
  forEachRowRun(A, m, h, 0, K, [&](const float* const* rows, int64_t run, int64_t off) {
    // a run that continues the last one in every row joins it: a 3x3 conv's three taps of one
    // kernel row are contiguous in NHWC away from the padding (one run of 3 Ci, not three of Ci)
    if (!runs.empty()) {
      NarrowRun<P>& last = runs.back();
      bool joins = last.off + last.run == off;
      for (int i = 0; i < P && joins; ++i) {
        const float* r = i < h ? rows[i] : nullptr;
        joins = last.r[i] ? r == last.r[i] + last.run : !r;
      }
      if (joins) {
        last.run += run;
        return;
      }
    }
    NarrowRun<P> x;
    for (int i = 0; i < P; ++i) x.r[i] = i < h ? rows[i] : nullptr;
    x.run = run;
    x.off = off;
    runs.push_back(x);
  });
  __m512 acc[P][N];
#pragma GCC unroll 16
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[i][j] = _mm512_setzero_ps();
  for (const NarrowRun<P>& x : runs) {
    const float* b = B + x.off;
    for (int64_t k = 0; k < x.run; k += 16) {
      const __mmask16 mask = x.run - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (x.run - k)) - 1);
      __m512 bv[N];
#pragma GCC unroll 8
      for (int j = 0; j < N; ++j) bv[j] = _mm512_maskz_loadu_ps(mask, b + j * K + k);
#pragma GCC unroll 16
      for (int i = 0; i < P; ++i) {
        if (!x.r[i]) continue;
        const __m512 a = _mm512_maskz_loadu_ps(mask, x.r[i] + k);
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) acc[i][j] = _mm512_fmadd_ps(a, bv[j], acc[i][j]);
      }
    }
  }
  // the sums, 16 accumulators at a time in row-major order (output f = i * N + j), stored as a
  // vector where C's rows are dense (ldc == N: the group's outputs are contiguous); the loops
  // unrolled whole, so that every index is a constant and the accumulators stay in registers
  __m512 v[16];
  int q = 0, f0 = 0;
#pragma GCC unroll 16
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
      v[q++] = acc[i][j];
      if (q < 16 && !(i == P - 1 && j == N - 1)) continue;
      for (; q < 16; ++q) v[q] = _mm512_setzero_ps();
      q = 0;
      const __m512 sums = sum16(v);
      const int64_t valid = std::min<int64_t>(16, h * N - f0);
      if (valid > 0) {
        if (ldc == N) {
          _mm512_mask_storeu_ps(c + f0, (__mmask16)((1u << valid) - 1), sums);
        } else {
          alignas(64) float t[16];
          _mm512_store_ps(t, sums);
          for (int64_t e = 0; e < valid; ++e) c[((f0 + e) / N) * ldc + (f0 + e) % N] = t[e];
        }
      }
      f0 += 16;
    }
}

// rows per group for N columns: P * N + N + 1 <= 32 registers, P <= 16
constexpr int kRowsFor[kGemmNarrowMaxN + 1] = {0, 16, 12, 8, 6, 4, 4, 3, 2};

template <int N>
void narrowGroups(const GemmA& A, int64_t m, int64_t h, int64_t K, const float* B, float* c, int64_t ldc) {
  constexpr int P = kRowsFor[N];
  static_assert(P * N + N + 1 <= 32, "the accumulators, B vectors and A vector fit 32 registers");
  thread_local std::vector<NarrowRun<P>> runs;
  for (int64_t s = 0; s < h; s += P) narrowRows<N, P>(A, m + s, std::min<int64_t>(P, h - s), K, B, c + s * ldc, ldc, runs);
}

}  // namespace

void gemmNarrowAvx512(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c, int64_t ldc) {
  switch (N) {
    case 1: return narrowGroups<1>(A, m, h, K, B, c, ldc);
    case 2: return narrowGroups<2>(A, m, h, K, B, c, ldc);
    case 3: return narrowGroups<3>(A, m, h, K, B, c, ldc);
    case 4: return narrowGroups<4>(A, m, h, K, B, c, ldc);
    case 5: return narrowGroups<5>(A, m, h, K, B, c, ldc);
    case 6: return narrowGroups<6>(A, m, h, K, B, c, ldc);
    case 7: return narrowGroups<7>(A, m, h, K, B, c, ldc);
    case 8: return narrowGroups<8>(A, m, h, K, B, c, ldc);
    default: break;
  }
}

}  // namespace onestep

ONESTEP_SIMD_END

#endif
