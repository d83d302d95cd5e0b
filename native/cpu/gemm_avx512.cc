// AVX-512 GEMM micro-kernel: 14 x 32 tile (28 zmm accumulators, 2 for B, 1 broadcast). Compiled
// for AVX-512 through a target pragma; used only where the CPU reports avx512f.
#include "gemm.h"

#include <algorithm>

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,f16c")
// GCC 12 warns about the intrinsics' own internal _mm512_undefined_ps() values
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace onestep {
namespace {

constexpr int MR = 14;
constexpr int NR = 32;

#define ONESTEP_ROW(i)                              \
  {                                                 \
    const __m512 x = _mm512_set1_ps(a[i]);          \
    c##i##0 = _mm512_fmadd_ps(x, b0, c##i##0);      \
    c##i##1 = _mm512_fmadd_ps(x, b1, c##i##1);      \
  }

inline __m512 loadPanel(const float* p) { return _mm512_load_ps(p); }
inline __m512 loadPanel(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }

// B panels in F32, or F16 converted in registers (the weight's own precision: exact)
template <typename BT>
void microAvx512T(int64_t kc, const float* ap, const BT* bp, float* c, int64_t ldc, bool accumulate) {
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(), c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps(), c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
  __m512 c120 = _mm512_setzero_ps(), c121 = _mm512_setzero_ps(), c130 = _mm512_setzero_ps(), c131 = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = loadPanel(bp + k * NR);
    const __m512 b1 = loadPanel(bp + k * NR + 16);
    const float* a = ap + k * MR;
    _mm_prefetch(reinterpret_cast<const char*>(bp + (k + 8) * NR), _MM_HINT_T0);
    ONESTEP_ROW(0) ONESTEP_ROW(1) ONESTEP_ROW(2) ONESTEP_ROW(3) ONESTEP_ROW(4) ONESTEP_ROW(5) ONESTEP_ROW(6)
    ONESTEP_ROW(7) ONESTEP_ROW(8) ONESTEP_ROW(9) ONESTEP_ROW(10) ONESTEP_ROW(11) ONESTEP_ROW(12) ONESTEP_ROW(13)
  }
  __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}, {c60, c61},
                       {c70, c71}, {c80, c81}, {c90, c91}, {c100, c101}, {c110, c111}, {c120, c121}, {c130, c131}};
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm512_add_ps(acc[i][0], _mm512_loadu_ps(row));
      acc[i][1] = _mm512_add_ps(acc[i][1], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc[i][0]);
    _mm512_storeu_ps(row + 16, acc[i][1]);
  }
}
#undef ONESTEP_ROW

void microAvx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  microAvx512T(kc, ap, bp, c, ldc, accumulate);
}

// R < MR rows of a panel packed MR rows wide (its last rows are padding)
template <int R, typename BT>
void microRowsT(int64_t kc, const float* ap, const BT* bp, float* c, int64_t ldc, bool accumulate) {
  __m512 acc0[R], acc1[R];
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = loadPanel(bp + k * NR);
    const __m512 b1 = loadPanel(bp + k * NR + 16);
    const float* a = ap + k * MR;
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 x = _mm512_set1_ps(a[i]);
      acc0[i] = _mm512_fmadd_ps(x, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(x, b1, acc1[i]);
    }
  }
  for (int i = 0; i < R; ++i) {
    float* row = c + i * ldc;
    if (accumulate) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_loadu_ps(row));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc0[i]);
    _mm512_storeu_ps(row + 16, acc1[i]);
  }
}
constexpr int kLowRows = MR / 2;
void microLowAvx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  microRowsT<kLowRows>(kc, ap, bp, c, ldc, accumulate);
}
void microLowAvx512H(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  microRowsT<kLowRows>(kc, ap, bp, c, ldc, accumulate);
}
void microAvx512H(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  microAvx512T(kc, ap, bp, c, ldc, accumulate);
}

// In-register 16 x 16 transpose: r[c] lane l <- r[l] lane c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
  }
}

// dst[k * MR + i] = rows[i][k]: 16 columns of up to 14 rows at a time, transposed in registers.
void packRowsAvx512(const float* const* rows, int64_t h, int64_t run, float* dst) {
  const __mmask16 storeMask = (__mmask16)((1u << MR) - 1);
  __m512 r[16];
  for (int64_t k = 0; k < run; k += 16) {
    const int64_t n = std::min<int64_t>(16, run - k);
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    for (int i = 0; i < 16; ++i)
      r[i] = (i < h && rows[i]) ? _mm512_maskz_loadu_ps(m, rows[i] + k) : _mm512_setzero_ps();
    transpose16(r);
    for (int64_t kk = 0; kk < n; ++kk) _mm512_mask_storeu_ps(dst + (k + kk) * MR, storeMask, r[kk]);
  }
}

inline __m512 load16(const void* p, DType dt, __mmask16 m) {
  switch (dt) {
    case DType::F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    case DType::BF16: return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    default: return _mm512_maskz_loadu_ps(m, p);
  }
}

// One 32-column B panel from [N][K] storage (F32, F16 or BF16), converted to float and transposed
// 16 x 16 at a time; put(k, half, v) stores row k's half (16 columns).
template <typename Put>
void transposePanel(const void* b, DType dt, int64_t ld, int64_t w, int64_t kc, Put put) {
  const int64_t es = dt == DType::F32 ? 4 : 2;
  const uint8_t* base = static_cast<const uint8_t*>(b);
  __m512 r[16];
  for (int half = 0; half < 2; ++half) {
    for (int64_t k = 0; k < kc; k += 16) {
      const int64_t n = std::min<int64_t>(16, kc - k);
      const __mmask16 m = (__mmask16)((1u << n) - 1);
      for (int j = 0; j < 16; ++j) {
        const int64_t col = half * 16 + j;
        r[j] = col < w ? load16(base + (col * ld + k) * es, dt, m) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t kk = 0; kk < n; ++kk) put(k + kk, half, r[kk]);
    }
  }
}

void packBnkAvx512(const void* b, DType dt, int64_t ld, int64_t w, int64_t kc, float* dst) {
  transposePanel(b, dt, ld, w, kc, [&](int64_t k, int half, __m512 v) { _mm512_store_ps(dst + k * NR + half * 16, v); });
}

// F16 storage into an F16 panel: stored back as halves (exact: every value came from a half)
void packBnkHAvx512(const uint16_t* b, int64_t ld, int64_t w, int64_t kc, uint16_t* dst) {
  transposePanel(b, DType::F16, ld, w, kc, [&](int64_t k, int half, __m512 v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k * NR + half * 16), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  });
}

static_assert(NR % 16 == 0, "widenH converts whole vectors: a panel group is a multiple of 16 values");
void widenHAvx512(const uint16_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; i += 16)
    _mm512_store_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
}

const GemmKernel kAvx512 = {"avx512",       MR,           NR,           384,          112, microAvx512, microAvx512H, kLowRows, microLowAvx512,
                             microLowAvx512H, packRowsAvx512, packBnkAvx512, packBnkHAvx512, widenHAvx512};

}  // namespace

const GemmKernel* gemmKernelAvx512() { return &kAvx512; }

}  // namespace onestep

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else
namespace onestep {
const GemmKernel* gemmKernelAvx512() { return nullptr; }
}  // namespace onestep
#endif
