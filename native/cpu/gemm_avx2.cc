// AVX2 + FMA GEMM micro-kernel: 6 x 16 tile (12 ymm accumulators). Compiled for AVX2 through a
// target pragma, so no build flags are needed; used only where the CPU reports avx2 and fma.
#include "gemm.h"
#include "gemm_internal.h"
#include "simd_target.h"

#if defined(ONESTEP_SIMD_X86)
#include <immintrin.h>

ONESTEP_SIMD_BEGIN("avx2,fma")

namespace onestep {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

void microAvx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(bp + k * NR);
    const __m256 b1 = _mm256_load_ps(bp + k * NR + 8);
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

const GemmKernel kAvx2 = {"avx2", MR, NR, 256, 72, microAvx2, nullptr, 0, nullptr, nullptr, nullptr, nullptr, nullptr, gemmNarrowAvx2, nullptr};

}  // namespace

const GemmKernel* gemmKernelAvx2() { return &kAvx2; }

}  // namespace onestep

ONESTEP_SIMD_END

#else
namespace onestep {
const GemmKernel* gemmKernelAvx2() { return nullptr; }
}  // namespace onestep
#endif
