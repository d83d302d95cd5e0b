// AVX-512 GEMM micro-kernel: 14 x 32 tile (28 zmm accumulators, 2 for B, 1 broadcast). Compiled
// for AVX-512 through a target pragma; used only where the CPU reports avx512f.
#include "gemm.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
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

void microAvx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(), c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps(), c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
  __m512 c120 = _mm512_setzero_ps(), c121 = _mm512_setzero_ps(), c130 = _mm512_setzero_ps(), c131 = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(bp + k * NR);
    const __m512 b1 = _mm512_load_ps(bp + k * NR + 16);
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

const GemmKernel kAvx512 = {"avx512", MR, NR, 192, 112, microAvx512};

}  // namespace

const GemmKernel* gemmKernelAvx512() { return &kAvx512; }

}  // namespace onestep

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
namespace onestep {
const GemmKernel* gemmKernelAvx512() { return nullptr; }
}  // namespace onestep
#endif
