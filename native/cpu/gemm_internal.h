// Internals shared by the GEMM drivers (gemm.cc, gemm_bf16.cc): the rows of A as runs of
// contiguous floats (the one place that knows how a convolution's receptive field maps onto the
// NHWC input; every packer, float32 or bf16, reads A through it), the epilogue, the work split on
// prepacked weights, and the bf16 micro-kernel interface.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

#include "gemm.h"

namespace onestep {

// For rows [m, m+h) (h <= 32) and depth [k0, k0+kc) of A: calls put(rows, run, offset) for
// consecutive runs of the depth, where rows[i] points at row m+i's `run` floats starting at depth
// k0+offset, or is null where they are all zero (a convolution's padding).
template <typename Put>
void forEachRowRun(const GemmA& A, int64_t m, int64_t h, int64_t k0, int64_t kc, Put put) {
  const float* rows[32];
  if (!A.conv) {
    for (int64_t i = 0; i < h; ++i) rows[i] = A.data + (m + i) * A.ld + k0;
    put(rows, kc, (int64_t)0);
    return;
  }
  const ConvGeom& g = *A.conv;
  const int64_t Hu = g.H * g.up, Wu = g.W * g.up;
  // per row: the receptive field's top-left corner in the (upsampled) input, and the image's first pixel
  int64_t y0s[32], x0s[32], bs[32];
  for (int64_t i = 0; i < h; ++i) {
    const int64_t r = m + i;
    x0s[i] = (r % g.Wo) * g.sw - g.pl;
    y0s[i] = ((r / g.Wo) % g.Ho) * g.sh - g.pt;
    bs[i] = (r / (g.Wo * g.Ho)) * g.H;
  }
  // the tap (ky, kx) and channel ci of depth k, stepped along (no division per run: a run is a
  // tap's channels, as few as 16 for a narrow GEMM's four vector steps)
  const int64_t tap0 = k0 / g.C;
  int64_t ci = k0 % g.C, ky = tap0 / g.kw, kx = tap0 % g.kw;
  // the nearest-upsampled input's pixel p is the input's p / up (a shift for 2)
  const int upShift = g.up == 1 ? 0 : g.up == 2 ? 1 : -1;
  int64_t k = k0;
  while (k < k0 + kc) {
    const int64_t run = std::min(g.C - ci, k0 + kc - k);
    for (int64_t i = 0; i < h; ++i) {
      int64_t iy = y0s[i] + ky, ix = x0s[i] + kx;
      if (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) {
        rows[i] = nullptr;
        continue;
      }
      if (upShift > 0) {
        iy >>= upShift;
        ix >>= upShift;
      } else if (upShift < 0) {
        iy /= g.up;
        ix /= g.up;
      }
      rows[i] = g.x + ((bs[i] + iy) * g.W + ix) * g.C + ci;
    }
    put(rows, run, k - k0);
    k += run;
    ci += run;
    if (ci == g.C) {
      ci = 0;
      if (++kx == g.kw) {
        kx = 0;
        ++ky;
      }
    }
  }
}

}  // namespace onestep

namespace onestep {

// C[h x w] (ldc) = epilogue(C) for the tile at (m0, n0): alpha, bias, activation, residual.
void applyEpilogue(const GemmEpilogue& ep, float* c, int64_t ldc, int64_t m0, int64_t n0, int64_t h, int64_t w);

// The work split of a product on prepacked B (M rows, `panels` 32-column panels, `blocks` depth
// blocks), shared by every driver: task(m0, rows, p0, p1, kb0, kb1) computes rows [m0, m0+rows)
// x panels [p0, p1) over depth blocks [kb0, kb1), accumulating across blocks in C. Few rows: one
// parallel pass, threads split the panels; many: block by block, rows x panel chunks. The last
// argument, panelsOuter, is true on the few-rows pass (see forEachTile).
using PrepackedTask = std::function<void(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool)>;
// The few-rows pass's chunks of panels: one per thread where each thread has at least
// kFewRowsPanelsPerThread panels (fewRowsOwnA: its task packs A itself), else up to 4 per thread,
// taken one at a time (the float32 driver then packs A once for all of them).
constexpr int64_t kFewRowsPanelsPerThread = 16;
bool fewRowsOwnA(int64_t panels, int threads);
int64_t fewRowsChunks(int64_t panels, int threads);
void splitPrepacked(int64_t M, int64_t panels, int64_t blocks, int64_t mcDefault, int mr, bool parallel, const PrepackedTask& task);

// The tiles of a block, f(ip, jp) for row micro-panels [0, mPanels) x panels [p0, p1). Rows
// outer (panelsOuter false): an A micro-panel stays in L1 while the block's B panels pass from
// L2, where the many-rows split shares each depth block's panels between the row blocks. Panels
// outer: a B panel, read from memory once (the few-rows pass reads each weight once), stays in
// L1 while the row panels pass; text encoder, 77 rows: ~1 % faster in float32.
template <typename F>
inline void forEachTile(int64_t mPanels, int64_t p0, int64_t p1, bool panelsOuter, F f) {
  if (panelsOuter) {
    for (int64_t jp = p0; jp < p1; ++jp)
      for (int64_t ip = 0; ip < mPanels; ++ip) f(ip, jp);
  } else {
    for (int64_t ip = 0; ip < mPanels; ++ip)
      for (int64_t jp = p0; jp < p1; ++jp) f(ip, jp);
  }
}

// The narrow kernels (gemm_narrow.h; GemmKernel::narrow of the avx512 and avx2 kernels).
void gemmNarrowAvx512(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c);
void gemmNarrowAvx2(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c);

// The bf16 driver (gemm_bf16.cc), for PrepackedB of BF16 panels.
void gemmPrepackedBf16(int64_t M, const GemmA& A, const PrepackedB& B, float* C, int64_t ldc, const GemmEpilogue& ep, bool parallel);

// ---- bf16 micro-kernels ----------------------------------------------------------------------
// Every bf16 kernel reads the same layouts:
// - B: depth blocks of kBf16Kc (the depth rounded up to a multiple of 32, zero-filled), each split
//   into 32-column panels of pairs: panel[kk / 2][j][kk % 2] = B[k0 + kk][n0 + j] (zero beyond N).
// - A: panels of the kernel's mr rows, row i at panel + i * kBf16Lda (row-major: packing is a
//   conversion and a contiguous store), depth [0, kcp) of the block, zero beyond the depth and in
//   rows past the matrix. kBf16Lda is a constant so the kernels address rows by displacement; it is
//   not a multiple of 4 KiB / 2 (no cache-set aliasing between rows).
constexpr int64_t kBf16Kc = 512;
constexpr int64_t kBf16Lda = kBf16Kc + 32;
constexpr int kBf16Nr = 32;
struct GemmKernelBf16 {
  const char* name;
  int mr;      // rows of an A panel
  int64_t mc;  // rows per block (a multiple of mr)
  // C[mr x 32] (ldc) = [C +] A panel x B panel over kcp (a multiple of 32) depth
  void (*micro)(int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate);
  // Rounds A rows to bf16 into a panel: rows[i] holds `run` floats for depth [off, off+run) of row
  // i < h, written at panel + i * kBf16Lda + off; a null row is written as zeros (convolution padding).
  void (*packRows)(const float* const* rows, int64_t h, int64_t run, int64_t off, uint16_t* panel);
  // Called on a thread before its first micro-kernel of a task, and after its last (AMX tile
  // configuration); nullptr: nothing.
  void (*begin)();
  void (*end)();
};
const GemmKernelBf16* gemmKernelBf16Generic();
const GemmKernelBf16* gemmKernelBf16Avx512();  // AVX512_BF16; nullptr where not compiled
const GemmKernelBf16* gemmKernelBf16Amx();     // AMX-BF16; nullptr where not compiled
// AMX needs the OS's permission for the tile state (Linux: arch_prctl): asked once per process.
bool amxPermitted();

}  // namespace onestep
