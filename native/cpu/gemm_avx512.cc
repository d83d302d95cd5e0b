// AVX-512 GEMM micro-kernel: 14 x 32 tile (28 zmm accumulators, 2 for B; A broadcast from memory). Compiled
// for AVX-512 through a target pragma; used only where the CPU reports avx512f.
#include "gemm.h"
#include "simd_target.h"
#include "gemm_internal.h"

#include <algorithm>
#include <cstddef>

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f,avx512bw,avx512vl,f16c")

#include "simd_avx512.h"
#include "fma_loop_simd.h"

namespace onestep {
namespace {

constexpr int MR = 14;
constexpr int NR = 32;

// The full 14 x 32 tile in inline assembly: each FMA takes its A value as an embedded broadcast
// from memory ({1to16}) instead of a broadcast into a register shared by two FMAs. On AMD Zen 4
// the separate broadcasts, and F16 panels' conversions, compete for the same pipes: with them the
// F16 tile ran at ~91 % of the FMA peak (F32 ~97 %), with embedded broadcasts both at ~99 %
// (a one-thread loop on L2-resident panels). Accumulators zmm4..zmm31 (row i: zmm(4+2i),
// zmm(5+2i)), B in zmm0 / zmm1.
#define ONESTEP_FMA2(i, r0, r1)                                  \
  "vfmadd231ps " #i "*4(%[a])%{1to16%}, %%zmm0, %%" #r0 "\n\t" \
  "vfmadd231ps " #i "*4(%[a])%{1to16%}, %%zmm1, %%" #r1 "\n\t"
// the tile's first 7 rows, and its last 7
#define ONESTEP_FMA_LOW                                                                                          \
  ONESTEP_FMA2(0, zmm4, zmm5) ONESTEP_FMA2(1, zmm6, zmm7) ONESTEP_FMA2(2, zmm8, zmm9) ONESTEP_FMA2(3, zmm10, zmm11) \
  ONESTEP_FMA2(4, zmm12, zmm13) ONESTEP_FMA2(5, zmm14, zmm15) ONESTEP_FMA2(6, zmm16, zmm17)
#define ONESTEP_FMA_HIGH                                                                       \
  ONESTEP_FMA2(7, zmm18, zmm19) ONESTEP_FMA2(8, zmm20, zmm21) ONESTEP_FMA2(9, zmm22, zmm23)    \
  ONESTEP_FMA2(10, zmm24, zmm25) ONESTEP_FMA2(11, zmm26, zmm27) ONESTEP_FMA2(12, zmm28, zmm29) \
  ONESTEP_FMA2(13, zmm30, zmm31)
// row i of C: [+= C,] store (r points at the row, then moves on by ldc floats)
#define ONESTEP_STORE(r0, r1)    \
  "vmovups %%" #r0 ", (%[r])\n\t" \
  "vmovups %%" #r1 ", 64(%[r])\n\t" \
  "add %[ld], %[r]\n\t"
#define ONESTEP_ADD_STORE(r0, r1)           \
  "vaddps (%[r]), %%" #r0 ", %%" #r0 "\n\t" \
  "vaddps 64(%[r]), %%" #r1 ", %%" #r1 "\n\t" ONESTEP_STORE(r0, r1)
#define ONESTEP_LOW_OF(M) M(zmm4, zmm5) M(zmm6, zmm7) M(zmm8, zmm9) M(zmm10, zmm11) M(zmm12, zmm13) M(zmm14, zmm15) M(zmm16, zmm17)
#define ONESTEP_HIGH_OF(M) M(zmm18, zmm19) M(zmm20, zmm21) M(zmm22, zmm23) M(zmm24, zmm25) M(zmm26, zmm27) M(zmm28, zmm29) M(zmm30, zmm31)
#define ONESTEP_ZERO(r0, r1) "vpxord %%" #r0 ", %%" #r0 ", %%" #r0 "\n\t vpxord %%" #r1 ", %%" #r1 ", %%" #r1 "\n\t"
// one kernel: the B loads (F16 converted, or F32; the prefetch 8 depths ahead), the FMAs and the
// stores of `ROWS` (LOW, or LOW then HIGH)
#define ONESTEP_KERNEL_ASM(LOADB, STEP, FMAS, ROWS)                                                            \
  ROWS(ONESTEP_ZERO)                                                                                           \
  "test %[k], %[k]\n\t"                                                                                        \
  "jle 2f\n\t"                                                                                                 \
  "1:\n\t" LOADB FMAS "add $56, %[a]\n\t"                                                                     \
  "add $" STEP ", %[b]\n\t"                                                                                    \
  "dec %[k]\n\t"                                                                                               \
  "jnz 1b\n\t"                                                                                                 \
  "2:\n\t"                                                                                                     \
  "test %[acc], %[acc]\n\t"                                                                                    \
  "jnz 3f\n\t" ROWS(ONESTEP_STORE) "jmp 4f\n\t"                                                               \
  "3:\n\t" ROWS(ONESTEP_ADD_STORE) "4:\n\t"
#define ONESTEP_LOAD_H "vcvtph2ps (%[b]), %%zmm0\n\t vcvtph2ps 32(%[b]), %%zmm1\n\t prefetcht0 512(%[b])\n\t"
#define ONESTEP_LOAD_F "vmovups (%[b]), %%zmm0\n\t vmovups 64(%[b]), %%zmm1\n\t prefetcht0 1024(%[b])\n\t"
#define ONESTEP_ALL_OF(M) ONESTEP_LOW_OF(M) ONESTEP_HIGH_OF(M)
#define ONESTEP_OPERANDS                                                  \
  : [a] "+r"(a), [b] "+r"(b), [k] "+r"(k), [r] "+r"(r)                    \
  : [ld] "r"(ld), [acc] "r"(acc)                                          \
  : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", \
    "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", \
    "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc"

// B panels in F32, or F16 converted in registers (the weight's own precision: exact); all MR
// rows, or the first MR / 2 (a panel's last rows, A still read with the stride of MR).
template <bool Low, typename BT>
void microAsm(int64_t kc, const float* ap, const BT* bp, float* c, int64_t ldc, bool accumulate) {
  const float* a = ap;
  const BT* b = bp;
  int64_t k = kc;
  float* r = c;
  const int64_t ld = ldc * (int64_t)sizeof(float);
  const int64_t acc = accumulate ? 1 : 0;
  if constexpr (sizeof(BT) == 2 && Low) asm volatile(ONESTEP_KERNEL_ASM(ONESTEP_LOAD_H, "64", ONESTEP_FMA_LOW, ONESTEP_LOW_OF) ONESTEP_OPERANDS);
  else if constexpr (sizeof(BT) == 2) asm volatile(ONESTEP_KERNEL_ASM(ONESTEP_LOAD_H, "64", ONESTEP_FMA_LOW ONESTEP_FMA_HIGH, ONESTEP_ALL_OF) ONESTEP_OPERANDS);
  else if constexpr (Low) asm volatile(ONESTEP_KERNEL_ASM(ONESTEP_LOAD_F, "128", ONESTEP_FMA_LOW, ONESTEP_LOW_OF) ONESTEP_OPERANDS);
  else asm volatile(ONESTEP_KERNEL_ASM(ONESTEP_LOAD_F, "128", ONESTEP_FMA_LOW ONESTEP_FMA_HIGH, ONESTEP_ALL_OF) ONESTEP_OPERANDS);
}
// The same tile over several depth segments (GemmKernel::microSeg): each segment's A, B and depth
// loaded from the list, the accumulators zeroed once and stored once.
#define ONESTEP_SEG_ASM(LOADB, STEP, FMAS, ROWS)                                                              \
  ROWS(ONESTEP_ZERO)                                                                                           \
  "5:\n\t"                                                                                                     \
  "mov (%[s]), %[a]\n\t"                                                                                       \
  "mov 8(%[s]), %[b]\n\t"                                                                                      \
  "mov 16(%[s]), %[k]\n\t"                                                                                     \
  "add $24, %[s]\n\t"                                                                                          \
  "test %[k], %[k]\n\t"                                                                                        \
  "jle 6f\n\t"                                                                                                 \
  "1:\n\t" LOADB FMAS "add $56, %[a]\n\t"                                                                     \
  "add $" STEP ", %[b]\n\t"                                                                                    \
  "dec %[k]\n\t"                                                                                               \
  "jnz 1b\n\t"                                                                                                 \
  "6:\n\t"                                                                                                     \
  "dec %[n]\n\t"                                                                                               \
  "jnz 5b\n\t"                                                                                                 \
  "test %[acc], %[acc]\n\t"                                                                                    \
  "jnz 3f\n\t" ROWS(ONESTEP_STORE) "jmp 4f\n\t"                                                               \
  "3:\n\t" ROWS(ONESTEP_ADD_STORE) "4:\n\t"
#define ONESTEP_SEG_OPERANDS                                                                                   \
  : [a] "=&r"(a), [b] "=&r"(b), [k] "=&r"(k), [r] "+r"(r), [s] "+r"(s), [n] "+r"(n)                            \
  : [ld] "r"(ld), [acc] "r"(acc)                                                                               \
  : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", \
    "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", \
    "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc"
static_assert(sizeof(GemmSeg) == 24 && offsetof(GemmSeg, b) == 8 && offsetof(GemmSeg, k) == 16, "the assembly reads GemmSeg as three 8-byte fields");

template <bool Low, bool Half>
void microSegAsm(const GemmSeg* segs, int64_t count, float* c, int64_t ldc, bool accumulate) {
  const float* a;
  const void* b;
  int64_t k;
  const GemmSeg* s = segs;
  int64_t n = count;
  float* r = c;
  const int64_t ld = ldc * (int64_t)sizeof(float);
  const int64_t acc = accumulate ? 1 : 0;
  if constexpr (Half && Low) asm volatile(ONESTEP_SEG_ASM(ONESTEP_LOAD_H, "64", ONESTEP_FMA_LOW, ONESTEP_LOW_OF) ONESTEP_SEG_OPERANDS);
  else if constexpr (Half) asm volatile(ONESTEP_SEG_ASM(ONESTEP_LOAD_H, "64", ONESTEP_FMA_LOW ONESTEP_FMA_HIGH, ONESTEP_ALL_OF) ONESTEP_SEG_OPERANDS);
  else if constexpr (Low) asm volatile(ONESTEP_SEG_ASM(ONESTEP_LOAD_F, "128", ONESTEP_FMA_LOW, ONESTEP_LOW_OF) ONESTEP_SEG_OPERANDS);
  else asm volatile(ONESTEP_SEG_ASM(ONESTEP_LOAD_F, "128", ONESTEP_FMA_LOW ONESTEP_FMA_HIGH, ONESTEP_ALL_OF) ONESTEP_SEG_OPERANDS);
}

void microSegAvx512(const GemmSeg* segs, int64_t n, float* c, int64_t ldc, bool accumulate, bool half, bool low) {
  if (n <= 0) return;
  if (half) low ? microSegAsm<true, true>(segs, n, c, ldc, accumulate) : microSegAsm<false, true>(segs, n, c, ldc, accumulate);
  else low ? microSegAsm<true, false>(segs, n, c, ldc, accumulate) : microSegAsm<false, false>(segs, n, c, ldc, accumulate);
}

template <typename BT>
void microAvx512T(int64_t kc, const float* ap, const BT* bp, float* c, int64_t ldc, bool accumulate) {
  microAsm<false>(kc, ap, bp, c, ldc, accumulate);
}
static_assert(MR == 14 && NR == 32, "the assembly tile is 14 x 32: A rows 56 bytes apart, B rows of 32 values");
#undef ONESTEP_FMA2
#undef ONESTEP_FMA_LOW
#undef ONESTEP_FMA_HIGH
#undef ONESTEP_STORE
#undef ONESTEP_ADD_STORE
#undef ONESTEP_LOW_OF
#undef ONESTEP_HIGH_OF
#undef ONESTEP_ZERO
#undef ONESTEP_KERNEL_ASM
#undef ONESTEP_LOAD_H
#undef ONESTEP_LOAD_F
#undef ONESTEP_ALL_OF
#undef ONESTEP_OPERANDS
#undef ONESTEP_SEG_ASM
#undef ONESTEP_SEG_OPERANDS

void microAvx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  microAvx512T(kc, ap, bp, c, ldc, accumulate);
}

constexpr int kLowRows = MR / 2;
static_assert(kLowRows == 7, "the assembly's low tile is 7 rows");
void microLowAvx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  microAsm<true>(kc, ap, bp, c, ldc, accumulate);
}
void microLowAvx512H(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  microAsm<true>(kc, ap, bp, c, ldc, accumulate);
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

const GemmKernel kAvx512 = {"avx512",       MR,           NR,           384,          112, microAvx512, microAvx512H, kLowRows, microLowAvx512,
                             microLowAvx512H, packRowsAvx512, packBnkAvx512, packBnkHAvx512, gemmNarrowAvx512, microSegAvx512,
                             fmaLoopOf<Avx512Vec, MR * NR / Avx512Vec::W>};

}  // namespace

const GemmKernel* gemmKernelAvx512() { return &kAvx512; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const GemmKernel* gemmKernelAvx512() { return nullptr; }
}  // namespace onestep
#endif
