// The narrow GEMM's kernel (gemmNarrow: at most kGemmNarrowMaxN output columns, a convolution's
// last layer to 3 or 4 channels), written once over a vector type: the panel kernels fill 32 (16)
// columns per tile, so 3 used ones leave a tenth of each FMA doing work; this one vectorizes along
// the depth instead: a group of rows times all N columns in vector accumulators, each A vector
// loaded once for the N columns, each B vector once for the rows, and the horizontal sums at the
// end, a vector of them at a time.
//
// Included by one file per ISA (gemm_narrow_avx512.cc, gemm_narrow_avx2.cc) inside its
// ONESTEP_SIMD_BEGIN / END, after the standard headers below (so that no library code is first
// compiled for the ISA): everything here has internal linkage, so each file's copy is compiled
// for its own ISA. C is dense (its rows N floats apart). V supplies (static, inline):
//   using vec; W (lanes); zero(); load(p); Mask; tailMask(n) (lanes [0, n)); loadTail(p, mask);
//   fma(a, b, c) (a * b + c); sum(vec v[W]) (lane q: the sum of v[q]'s lanes);
//   store(p, v, n) (the first n lanes); rows(N) (constexpr): rows per group for N columns, so that
//   P * N accumulators, N B vectors and the A vector fit the ISA's registers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gemm_internal.h"

namespace onestep {
namespace {

// A run of depths for a group's rows: `run` depths from `off` on, contiguous in each row (null:
// zeros, a convolution's padding; or a row past the group's).
template <int P>
struct NarrowRun {
  const float* r[P];
  int64_t run, off;
};

// The group's runs (a convolution's taps), a run that continues the last one in every row joined
// to it: a 3x3 conv's three taps of one kernel row are contiguous in NHWC away from the padding
// (one run of 3 Ci, not three of Ci).
template <int P>
void narrowRuns(const GemmA& A, int64_t m, int64_t h, int64_t K, std::vector<NarrowRun<P>>& runs) {
  runs.clear();
  forEachRowRun(A, m, h, 0, K, [&](const float* const* rows, int64_t run, int64_t off) {
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
}

// One vector step of depth k for every row and column (Tail: the run's last, partial one).
template <typename V, int N, int P, bool Tail>
__attribute__((always_inline)) inline void narrowStep(typename V::vec (&acc)[P][N], const NarrowRun<P>& x, const float* b, int64_t K,
                                                      int64_t k, typename V::Mask mask) {
  typename V::vec bv[N];
#pragma GCC unroll 8
  for (int j = 0; j < N; ++j) bv[j] = Tail ? V::loadTail(b + j * K + k, mask) : V::load(b + j * K + k);
#pragma GCC unroll 16
  for (int i = 0; i < P; ++i) {
    if (!x.r[i]) continue;
    const typename V::vec a = Tail ? V::loadTail(x.r[i] + k, mask) : V::load(x.r[i] + k);
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[i][j] = V::fma(a, bv[j], acc[i][j]);
  }
}

// Rows [m, m+h) (h <= P) x the N columns: c[i * N + j] = sum_k A[m+i][k] * B[j][k]. The runs are
// gathered first, then the products run in this function's own loops, so that the accumulators
// stay in registers.
template <typename V, int N, int P>
void narrowRows(const GemmA& A, int64_t m, int64_t h, int64_t K, const float* B, float* c, std::vector<NarrowRun<P>>& runs) {
  using vec = typename V::vec;
  constexpr int W = V::W;
  narrowRuns<P>(A, m, h, K, runs);
  vec acc[P][N];
#pragma GCC unroll 16
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[i][j] = V::zero();
  for (const NarrowRun<P>& x : runs) {
    const float* b = B + x.off;
    int64_t k = 0;
    for (; k + W <= x.run; k += W) narrowStep<V, N, P, false>(acc, x, b, K, k, typename V::Mask{});
    if (k < x.run) narrowStep<V, N, P, true>(acc, x, b, K, k, V::tailMask((int)(x.run - k)));
  }
  // the sums, W accumulators at a time in row-major order (output f = i * N + j: the group's
  // outputs are contiguous in the dense C), stored as vectors; the loops unrolled whole, so that
  // every index is a constant and the accumulators stay in registers
  vec v[W];
  int q = 0, f0 = 0;
#pragma GCC unroll 16
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
      v[q++] = acc[i][j];
      if (q < W && !(i == P - 1 && j == N - 1)) continue;
      for (; q < W; ++q) v[q] = V::zero();
      q = 0;
      const vec sums = V::sum(v);
      const int64_t valid = std::min<int64_t>(W, h * N - f0);
      if (valid > 0) V::store(c + f0, sums, (int)valid);
      f0 += W;
    }
}

template <typename V, int N, int P>
void narrowGroups(const GemmA& A, int64_t m, int64_t h, int64_t K, const float* B, float* c) {
  thread_local std::vector<NarrowRun<P>> runs;
  for (int64_t s = 0; s < h; s += P) narrowRows<V, N, P>(A, m + s, std::min<int64_t>(P, h - s), K, B, c + s * N, runs);
}

// The kernel for GemmKernel::narrow: rows [m, m+h) of the dense C (c: row m) in groups of V::rows(N).
template <typename V>
void narrowKernel(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c) {
  switch (N) {
    case 1: return narrowGroups<V, 1, V::rows(1)>(A, m, h, K, B, c);
    case 2: return narrowGroups<V, 2, V::rows(2)>(A, m, h, K, B, c);
    case 3: return narrowGroups<V, 3, V::rows(3)>(A, m, h, K, B, c);
    case 4: return narrowGroups<V, 4, V::rows(4)>(A, m, h, K, B, c);
    case 5: return narrowGroups<V, 5, V::rows(5)>(A, m, h, K, B, c);
    case 6: return narrowGroups<V, 6, V::rows(6)>(A, m, h, K, B, c);
    case 7: return narrowGroups<V, 7, V::rows(7)>(A, m, h, K, B, c);
    case 8: return narrowGroups<V, 8, V::rows(8)>(A, m, h, K, B, c);
    default: break;
  }
}

}  // namespace
}  // namespace onestep
