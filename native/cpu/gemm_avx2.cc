// AVX2 + FMA GEMM micro-kernel: 6 x 16 tile (12 ymm accumulators), B panels in F32 or F16 (F16C),
// and its packers. Compiled for AVX2 through a target pragma, so no build flags are needed; used
// only where the CPU reports avx2, fma and f16c.
#include "gemm.h"
#include "gemm_internal.h"
#include "simd_target.h"

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

#include <algorithm>
#include <cstring>

ONESTEP_SIMD_BEGIN("avx2,fma,f16c")

#include "simd_avx2.h"
#include "fma_loop_simd.h"

namespace onestep {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

// F32 panels, or F16 ones converted in registers (F16C: the weight's own bytes, exact). On AMD
// Zen 3 the broadcasts and the conversions do not slow the FMAs: a 256-deep tile on L1/L2
// panels runs at ~97 % of the FMA peak either way.
inline __m256 loadB8(const float* p) { return _mm256_load_ps(p); }
inline __m256 loadB8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }

// The tile over `n` depth segments (GemmKernel::microSeg; one segment: the plain micro-kernel),
// the accumulators in registers from the first to the last.
template <typename BT>
void microSegAvx2T(const GemmSeg* segs, int64_t n, float* c, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t sg = 0; sg < n; ++sg) {
  const float* ap = segs[sg].a;
  const BT* bp = static_cast<const BT*>(segs[sg].b);
  const int64_t kc = segs[sg].k;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = loadB8(bp + k * NR);
    const __m256 b1 = loadB8(bp + k * NR + 8);
    const float* a = ap + k * MR;
    __m256 x = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
  }
  }
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(row));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, acc[i][0]);
    _mm256_storeu_ps(row + 8, acc[i][1]);
  }
}
void microAvx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  const GemmSeg seg{ap, bp, kc};
  microSegAvx2T<float>(&seg, 1, c, ldc, accumulate);
}
void microAvx2H(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  const GemmSeg seg{ap, bp, kc};
  microSegAvx2T<uint16_t>(&seg, 1, c, ldc, accumulate);
}
void microSegAvx2(const GemmSeg* segs, int64_t n, float* c, int64_t ldc, bool accumulate, bool half, bool) {
  if (n <= 0) return;
  if (half) microSegAvx2T<uint16_t>(segs, n, c, ldc, accumulate);
  else microSegAvx2T<float>(segs, n, c, ldc, accumulate);
}

// In-register 8 x 8 transpose: r[c] lane l <- r[l] lane c.
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    const __m256d a = _mm256_castps_pd(t[4 * i]), b = _mm256_castps_pd(t[4 * i + 1]);
    const __m256d c = _mm256_castps_pd(t[4 * i + 2]), d = _mm256_castps_pd(t[4 * i + 3]);
    r[4 * i + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
  }
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
    t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
  }
  for (int j = 0; j < 8; ++j) r[j] = t[j];
}

// dst[k * MR + i] = rows[i][k]: 8 depths of the 6 rows at a time, transposed in registers; each
// depth's 6 values stored as 8 (the next depth's store overwrites the 2 extra), the block's last
// as 4 + 2.
void packRowsAvx2(const float* const* rows, int64_t h, int64_t run, float* dst) {
  __m256 r[8];
  r[6] = r[7] = _mm256_setzero_ps();
  for (int64_t k = 0; k < run; k += 8) {
    const int64_t n = std::min<int64_t>(8, run - k);
    const Avx2Vec::Lanes l(n);
    for (int i = 0; i < MR; ++i) r[i] = (i < h && rows[i]) ? l.load(rows[i] + k) : _mm256_setzero_ps();
    __m256 t[8] = {r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]};
    transpose8(t);
    float* d = dst + k * MR;
    for (int64_t kk = 0; kk + 1 < n; ++kk) _mm256_storeu_ps(d + kk * MR, t[kk]);
    float* last = d + (n - 1) * MR;
    _mm_storeu_ps(last, _mm256_castps256_ps128(t[n - 1]));
    _mm_storel_pi(reinterpret_cast<__m64*>(last + 4), _mm256_extractf128_ps(t[n - 1], 1));
  }
}

inline __m256 loadAs8(const void* p, DType dt, int64_t n) {
  const Avx2Vec::Lanes l(n);
  if (dt == DType::F32) return l.load(static_cast<const float*>(p));
  if (dt == DType::F16) return l.loadHalf(static_cast<const uint16_t*>(p));
  // BF16: the top halves of floats
  alignas(16) uint16_t buf[8] = {};
  std::memcpy(buf, p, (size_t)n * sizeof(uint16_t));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(buf))), 16));
}

// One 16-column B panel from [N][K] storage (F32, F16 or BF16), converted to float and transposed
// 8 x 8 at a time; put(k, half, v) stores row k's half (8 columns).
template <typename Put>
void transposePanel(const void* b, DType dt, int64_t ld, int64_t w, int64_t kc, Put put) {
  const int64_t es = dt == DType::F32 ? 4 : 2;
  const uint8_t* base = static_cast<const uint8_t*>(b);
  __m256 r[8];
  for (int half = 0; half < 2; ++half) {
    for (int64_t k = 0; k < kc; k += 8) {
      const int64_t n = std::min<int64_t>(8, kc - k);
      for (int j = 0; j < 8; ++j) {
        const int64_t col = half * 8 + j;
        r[j] = col < w ? loadAs8(base + (col * ld + k) * es, dt, n) : _mm256_setzero_ps();
      }
      transpose8(r);
      for (int64_t kk = 0; kk < n; ++kk) put(k + kk, half, r[kk]);
    }
  }
}

void packBnkAvx2(const void* b, DType dt, int64_t ld, int64_t w, int64_t kc, float* dst) {
  transposePanel(b, dt, ld, w, kc, [&](int64_t k, int half, __m256 v) { _mm256_storeu_ps(dst + k * NR + half * 8, v); });
}

// F16 storage into an F16 panel: stored back as halves (exact: every value came from a half)
void packBnkHAvx2(const uint16_t* b, int64_t ld, int64_t w, int64_t kc, uint16_t* dst) {
  transposePanel(b, DType::F16, ld, w, kc, [&](int64_t k, int half, __m256 v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k * NR + half * 8), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  });
}

const GemmKernel kAvx2 = {"avx2",       MR,          NR,           256,     72, microAvx2, microAvx2H, 0, nullptr, nullptr, packRowsAvx2,
                          packBnkAvx2, packBnkHAvx2, gemmNarrowAvx2, microSegAvx2,
                          fmaLoopOf<Avx2Vec, MR * NR / Avx2Vec::W>};

}  // namespace

const GemmKernel* gemmKernelAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const GemmKernel* gemmKernelAvx2() { return nullptr; }
}  // namespace onestep
#endif
