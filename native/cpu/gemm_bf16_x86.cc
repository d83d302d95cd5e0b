// x86 bf16 micro-kernels (compiled for their ISA through a target pragma; chosen at run time by
// gemm_bf16.cc only where the CPU reports it):
// - AMX-BF16: a 32 x 32 tile of C in four 16 x 16 float32 tiles, A rows loaded as 16 x 32 tiles,
//   B in the shared pair layout (one 16-row tile = 32 depth x 16 columns); TDPBF16PS.
// - AVX512_BF16: 14 x 32 (28 zmm accumulators), a row's pair of depths broadcast as one 32-bit
//   word; VDPBF16PS.
// Both read the shared layouts of gemm_internal.h (A rows kBf16Lda apart) and pack A alike.
#include "gemm_internal.h"

#include <cstring>
#include <mutex>

#include "../core/half.h"

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define ONESTEP_BF16_X86 1
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

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

#define ONESTEP_BF16_ROW(i)                                                                      \
  {                                                                                              \
    const __m512bh x = (__m512bh)_mm512_set1_epi32(a[(i) * kRow]);                              \
    c##i##0 = _mm512_dpbf16_ps(c##i##0, x, b0);                                                  \
    c##i##1 = _mm512_dpbf16_ps(c##i##1, x, b1);                                                  \
  }
#define ONESTEP_BF16_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13)

void microAvx512(int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
#define ONESTEP_BF16_DECL(i) __m512 c##i##0, c##i##1;
  ONESTEP_BF16_ALL(ONESTEP_BF16_DECL)
#undef ONESTEP_BF16_DECL
  if (accumulate) {
#define ONESTEP_BF16_LOAD(i)                    \
  c##i##0 = _mm512_loadu_ps(c + i * ldc);       \
  c##i##1 = _mm512_loadu_ps(c + i * ldc + 16);
    ONESTEP_BF16_ALL(ONESTEP_BF16_LOAD)
#undef ONESTEP_BF16_LOAD
  } else {
#define ONESTEP_BF16_ZERO(i)         \
  c##i##0 = _mm512_setzero_ps();     \
  c##i##1 = _mm512_setzero_ps();
    ONESTEP_BF16_ALL(ONESTEP_BF16_ZERO)
#undef ONESTEP_BF16_ZERO
  }
  // a[i * kRow]: row i's pair of depths (rows kBf16Lda bf16 = kRow 32-bit words apart)
  constexpr int64_t kRow = kBf16Lda / 2;
  const int32_t* a = reinterpret_cast<const int32_t*>(ap);
  for (int64_t kp = 0; kp < kcp / 2; ++kp) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp), b1 = (__m512bh)_mm512_loadu_si512(bp + 32);
    ONESTEP_BF16_ALL(ONESTEP_BF16_ROW)
    a += 1;
    bp += kBf16Nr * 2;
  }
#define ONESTEP_BF16_STORE(i)                   \
  _mm512_storeu_ps(c + i * ldc, c##i##0);       \
  _mm512_storeu_ps(c + i * ldc + 16, c##i##1);
  ONESTEP_BF16_ALL(ONESTEP_BF16_STORE)
#undef ONESTEP_BF16_STORE
}

const GemmKernelBf16 kAvx512 = {"avx512_bf16", kVecMr, 112, microAvx512, packRowsX86, nullptr, nullptr};

}  // namespace

const GemmKernelBf16* gemmKernelBf16Avx512() { return &kAvx512; }
const GemmKernelBf16* gemmKernelBf16Amx() { return &kAmx; }

}  // namespace onestep

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

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
