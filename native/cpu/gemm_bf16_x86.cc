// x86 bf16 micro-kernels (compiled for their ISA through a target pragma; chosen at run time by
// gemm_bf16.cc only where the CPU reports it):
// - AMX-BF16: a 32 x 32 tile of C in four 16 x 16 float32 tiles, A rows loaded as 16 x 32 tiles,
//   B in the shared pair layout (one 16-row tile = 32 depth x 16 columns); TDPBF16PS.
// - AVX512_BF16: 14 x 32 (28 zmm accumulators), a row's pair of depths broadcast as one 32-bit
//   word; VDPBF16PS.
// Both read the shared layouts of gemm_internal.h (A rows kBf16Lda apart) and pack A alike.
#include "gemm_internal.h"
#include "simd_target.h"

#include <cstring>
#include <mutex>

#include "../core/half.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(ONESTEP_SIMD_X86)
#define ONESTEP_BF16_X86 1
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")

namespace onestep {
namespace {

// 32 floats -> 32 bf16 (nearest even), in order
inline __m512i cvt32(const float* p) {
  const __m512 lo = _mm512_loadu_ps(p), hi = _mm512_loadu_ps(p + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// ---- AMX -------------------------------------------------------------------------------------
constexpr int kAmxMr = 32;

void microAmx(int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  const int64_t ldcb = ldc * (int64_t)sizeof(float), lda = kBf16Lda * 2;
  if (accumulate) {
    _tile_loadd(0, c, ldcb);
    _tile_loadd(1, c + 16, ldcb);
    _tile_loadd(2, c + 16 * ldc, ldcb);
    _tile_loadd(3, c + 16 * ldc + 16, ldcb);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t k = 0; k < kcp; k += 32) {
    _tile_loadd(4, ap + k, lda);
    _tile_loadd(5, ap + 16 * kBf16Lda + k, lda);
    _tile_loadd(6, bp + k * kBf16Nr, kBf16Nr * 4);
    _tile_loadd(7, bp + k * kBf16Nr + 32, kBf16Nr * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, ldcb);
  _tile_stored(1, c + 16, ldcb);
  _tile_stored(2, c + 16 * ldc, ldcb);
  _tile_stored(3, c + 16 * ldc + 16, ldcb);
}

// rows converted 32 floats at a time, stored contiguously (the shared A layout)
void packRowsX86(const float* const* rows, int64_t h, int64_t run, int64_t off, uint16_t* panel) {
  for (int64_t i = 0; i < h; ++i) {
    const float* src = rows[i];
    uint16_t* dst = panel + i * kBf16Lda + off;
    int64_t k = 0;
    if (!src) {
      for (; k + 32 <= run; k += 32) _mm512_storeu_si512(dst + k, _mm512_setzero_si512());
    } else {
      for (; k + 32 <= run; k += 32) _mm512_storeu_si512(dst + k, cvt32(src + k));
    }
    if (k < run) {  // the last 1..31 through masks
      const int64_t rest = run - k;
      const __mmask16 lo = (__mmask16)(rest >= 16 ? 0xffff : (1u << rest) - 1), hi = (__mmask16)(rest > 16 ? (1u << (rest - 16)) - 1 : 0);
      const __m512 a = src ? _mm512_maskz_loadu_ps(lo, src + k) : _mm512_setzero_ps();
      const __m512 b = src ? _mm512_maskz_loadu_ps(hi, src + k + 16) : _mm512_setzero_ps();
      _mm512_mask_storeu_epi16(dst + k, (__mmask32)((1ull << rest) - 1), (__m512i)_mm512_cvtne2ps_pbh(b, a));
    }
  }
}

struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t startRow;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void beginAmx() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;  // 16 floats or 32 bf16
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

void endAmx() { _tile_release(); }

const GemmKernelBf16 kAmx = {"amx_bf16", kAmxMr, 128, microAmx, packRowsX86, beginAmx, endAmx};

// ---- AVX512_BF16 -----------------------------------------------------------------------------
constexpr int kVecMr = 14;

// In inline assembly, each VDPBF16PS taking row i's pair as an embedded broadcast from memory
// ({1to16}) rather than from a register broadcast shared by two (those broadcasts took issue slots:
// 97 -> 99.7 % of the bf16 peak on one Zen 4 thread, L2-resident panels). C is loaded into the
// accumulators first (accumulate) as before: the same arithmetic, the same bits. Accumulators
// zmm4..zmm31 (row i: zmm(4+2i), zmm(5+2i)), B's two vectors in zmm0 / zmm1; row i's pair at byte
// i * kBf16Lda * 2 of the row block (rows kBf16Lda bf16 apart, a constant: displacements).
#define ONESTEP_BF16_DOT2(i, r0, r1)                                     \
  "vdpbf16ps %c[o" #i "](%[a])%{1to16%}, %%zmm0, %%" #r0 "\n\t"          \
  "vdpbf16ps %c[o" #i "](%[a])%{1to16%}, %%zmm1, %%" #r1 "\n\t"
#define ONESTEP_BF16_ROWS(M)                                                                                  \
  M(0, zmm4, zmm5) M(1, zmm6, zmm7) M(2, zmm8, zmm9) M(3, zmm10, zmm11) M(4, zmm12, zmm13) M(5, zmm14, zmm15) \
  M(6, zmm16, zmm17) M(7, zmm18, zmm19) M(8, zmm20, zmm21) M(9, zmm22, zmm23) M(10, zmm24, zmm25)           \
  M(11, zmm26, zmm27) M(12, zmm28, zmm29) M(13, zmm30, zmm31)
#define ONESTEP_BF16_ZERO(i, r0, r1) "vpxord %%" #r0 ", %%" #r0 ", %%" #r0 "\n\t vpxord %%" #r1 ", %%" #r1 ", %%" #r1 "\n\t"
#define ONESTEP_BF16_LOADC(i, r0, r1) \
  "vmovups (%[r]), %%" #r0 "\n\t vmovups 64(%[r]), %%" #r1 "\n\t add %[ld], %[r]\n\t"
#define ONESTEP_BF16_STOREC(i, r0, r1) \
  "vmovups %%" #r0 ", (%[w])\n\t vmovups %%" #r1 ", 64(%[w])\n\t add %[ld], %[w]\n\t"

void microAvx512(int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  constexpr int64_t R = kBf16Lda * 2;  // bytes from one A row to the next
  const uint16_t* a = ap;
  const uint16_t* b = bp;
  int64_t k = kcp / 2;
  float* r = c;
  float* w = c;
  const int64_t ld = ldc * (int64_t)sizeof(float);
  const int64_t acc = accumulate ? 1 : 0;
  asm volatile(
      "test %[acc], %[acc]\n\t"
      "jnz 5f\n\t" ONESTEP_BF16_ROWS(ONESTEP_BF16_ZERO) "jmp 6f\n\t"
      "5:\n\t" ONESTEP_BF16_ROWS(ONESTEP_BF16_LOADC)
      "6:\n\t"
      "test %[k], %[k]\n\t"
      "jle 2f\n\t"
      "1:\n\t"
      "vmovdqu32 (%[b]), %%zmm0\n\t"
      "vmovdqu32 64(%[b]), %%zmm1\n\t" ONESTEP_BF16_ROWS(ONESTEP_BF16_DOT2)
      "add $4, %[a]\n\t"
      "add $128, %[b]\n\t"
      "dec %[k]\n\t"
      "jnz 1b\n\t"
      "2:\n\t" ONESTEP_BF16_ROWS(ONESTEP_BF16_STOREC)
      : [a] "+r"(a), [b] "+r"(b), [k] "+r"(k), [r] "+r"(r), [w] "+r"(w)
      : [ld] "r"(ld), [acc] "r"(acc), [o0] "i"(0), [o1] "i"(R), [o2] "i"(2 * R), [o3] "i"(3 * R), [o4] "i"(4 * R),
        [o5] "i"(5 * R), [o6] "i"(6 * R), [o7] "i"(7 * R), [o8] "i"(8 * R), [o9] "i"(9 * R), [o10] "i"(10 * R),
        [o11] "i"(11 * R), [o12] "i"(12 * R), [o13] "i"(13 * R)
      : "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
        "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26",
        "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "memory", "cc");
}
static_assert(kVecMr == 14 && kBf16Nr == 32, "the assembly tile is 14 x 32");
#undef ONESTEP_BF16_DOT2
#undef ONESTEP_BF16_ROWS
#undef ONESTEP_BF16_ZERO
#undef ONESTEP_BF16_LOADC
#undef ONESTEP_BF16_STOREC

const GemmKernelBf16 kAvx512 = {"avx512_bf16", kVecMr, 112, microAvx512, packRowsX86, nullptr, nullptr};

}  // namespace

const GemmKernelBf16* gemmKernelBf16Avx512() { return &kAvx512; }
const GemmKernelBf16* gemmKernelBf16Amx() { return &kAmx; }

}  // namespace onestep

ONESTEP_SIMD_END

#else  // not x86

namespace onestep {
const GemmKernelBf16* gemmKernelBf16Avx512() { return nullptr; }
const GemmKernelBf16* gemmKernelBf16Amx() { return nullptr; }
}  // namespace onestep

#endif

namespace onestep {

bool amxPermitted() {
#if defined(ONESTEP_BF16_X86) && defined(__linux__)
  static std::once_flag once;
  static bool permitted = false;
  // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA: the kernel enables the tile state for the process
  std::call_once(once, [] { permitted = syscall(SYS_arch_prctl, 0x1023, 18) == 0; });
  return permitted;
#else
  return false;
#endif
}

}  // namespace onestep
