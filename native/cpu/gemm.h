// Packed single-precision GEMM for the CPU backend: C = epilogue(alpha * A * B).
// A is float32 row-major [M][K]; B is float32, float16 or bfloat16, stored either [N][K] (a torch
// Linear weight, i.e. B transposed) or [K][N]; it is converted to float32 while packing.
// Micro-kernels: AVX-512, AVX2+FMA or portable C++, chosen at run time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "../core/dtype.h"
#include "activation.h"

namespace onestep {

struct GemmB {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int64_t ld = 0;   // elements between consecutive rows of the stored matrix
  bool nk = true;   // true: stored [N][K]; false: stored [K][N]
};

// Geometry of an implicit-GEMM convolution: row m of A is output pixel (b, oy, ox), column k is
// (ky, kx, ci) of the receptive field, gathered from the NHWC input while packing (no im2col).
struct ConvGeom {
  const float* x = nullptr;  // [B, H, W, C]
  int64_t B = 0, H = 0, W = 0, C = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, pt = 0, pl = 0;
  int64_t up = 1;  // nearest upsampling of the input by this factor, fused
  int64_t Ho = 0, Wo = 0;
};

// A: dense float32 rows [M][lda], or a convolution gather.
struct GemmA {
  const float* data = nullptr;
  int64_t ld = 0;
  const ConvGeom* conv = nullptr;
  // bf16 products only (B prepacked as BF16): A already rounded to bf16 in the layout the bf16
  // kernels read, instead of data / conv: depth block kb of row m at
  // bf16 + (kb * bf16Rows + m) * gemmBf16RowStride(), zero from the depth's end to a multiple of
  // 32; bf16Rows >= M rounded up to 32 (rows past M are read, their results dropped).
  const uint16_t* bf16 = nullptr;
  int64_t bf16Rows = 0;
};

struct GemmEpilogue {
  float alpha = 1.0f;               // scales A*B
  const float* bias = nullptr;      // [N], added after alpha
  Act act = Act::None;              // then the activation
  const float* residual = nullptr;  // then + residual[m * ldr + n]
  int64_t ldr = 0;
  bool accumulate = false;          // C += result instead of C = result
};

// Splits the work over the global thread pool when `parallel` (and the call is not nested).
void gemm(int64_t M, int64_t N, int64_t K, const GemmA& A, const GemmB& B, float* C, int64_t ldc,
          const GemmEpilogue& ep, bool parallel = true);
inline void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmB& B, float* C, int64_t ldc,
                 const GemmEpilogue& ep, bool parallel = true) {
  GemmA a;
  a.data = A;
  a.ld = lda;
  gemm(M, N, K, a, B, C, ldc, ep, parallel);
}

// Packing B once for many products with it (attention's K and V):
// the size in floats of all of B packed, and the packing itself (single-threaded).
size_t gemmPackedBSize(int64_t K, int64_t N);
void gemmPackB(const GemmB& B, int64_t K, int64_t N, float* out);
// C = epilogue(alpha * A * B) with B from gemmPackB; single-threaded.
void gemmPackedB(int64_t M, int64_t N, int64_t K, const GemmA& A, const float* packedB, float* C, int64_t ldc,
                 const GemmEpilogue& ep);
// ---- B packed once, at plan time (a weight) --------------------------------------------------
// The layout of the kernel in use (kc-deep blocks of nr-wide panels, as gemmPackB), stored as F16
// for F16 weights where the kernel has a half-precision micro-kernel (the panels converted in
// registers: the weight's own bytes, read once per product, never re-packed), else as F32.
struct PrepackedB {
  const void* data = nullptr;
  DType dtype = DType::F32;  // of the panels: F32 or F16 (gemmPrepackB), or BF16 (gemmPrepackBf16)
  int64_t K = 0, N = 0;
  int kernel = 0;            // the micro-kernel it was packed for (gemmPrepackKernel)
  // BF16 only: a view of N columns from panel firstPanel on of a matrix packed with allPanels
  // 32-column panels (0: the matrix itself, allPanels = its own)
  int64_t firstPanel = 0, allPanels = 0;
};
// The panels' dtype for a weight of `weight` dtype, or DType::I64 where prepacking does not pay
// (BF16 weights, or F16 ones on a kernel without a half-precision variant: packed per call).
DType gemmPrepackDtype(DType weight);
// The kernel in use, as PrepackedB::kernel.
int gemmPrepackKernel();
// Elements (of the panels' dtype) of B [K x N] prepacked.
size_t gemmPrepackElems(int64_t K, int64_t N);
// The same for the kernel `kernel` (a PrepackedB's).
size_t gemmPrepackElems(int64_t K, int64_t N, int kernel);
// Packs B for the kernel in use into `out` (gemmPrepackElems elements of `as`), in parallel.
void gemmPrepackB(const GemmB& B, int64_t K, int64_t N, DType as, void* out);
// Packs part of B [K x N] as F32 panels: B holds columns [n0, n0 + w) (its own 0..w), written into
// their place in `out`, all of B prepacked (gemmPrepackB's layout); n0 a multiple of
// gemmPrepackPanelWidth(). Single-threaded: callers making B a few panels at a time (Winograd).
void gemmPrepackBColumns(const GemmB& B, int64_t K, int64_t N, int64_t n0, int64_t w, float* out);
int64_t gemmPrepackPanelWidth();
// C = epilogue(A * B) with a prepacked B (ep.accumulate unsupported); one parallel pass.
void gemmPrepacked(int64_t M, const GemmA& A, const PrepackedB& B, float* C, int64_t ldc, const GemmEpilogue& ep, bool parallel = true);

// ---- few columns (a convolution to 3 or 4 channels) --------------------------------------------
// C[M x N] = epilogue(A * B^T) for N <= kGemmNarrowMaxN columns, C dense (rows N apart), B float32
// [N][K] (rows K apart), vectorized along the depth where the kernel in use has a narrow variant
// (GemmKernel::narrow; gemmNarrowAvailable), else by gemm(). Float32 operands whatever the graph's
// precision.
constexpr int kGemmNarrowMaxN = 8;
bool gemmNarrowAvailable();
void gemmNarrow(int64_t M, int64_t N, int64_t K, const GemmA& A, const float* B, float* C, const GemmEpilogue& ep, bool parallel = true);

// ---- bfloat16 products (a CPU graph of precision 'bf16') ---------------------------------------
// Operands rounded to bf16 (nearest even), products accumulated in float32: AMX-BF16 tiles where
// the CPU and the OS allow them, else AVX512_BF16 (VDPBF16PS). gemmPrepacked runs them on B
// prepacked by gemmPrepackBf16 (PrepackedB::dtype BF16; the layout is every bf16 kernel's).
// The kernel in use: "amx_bf16", "avx512_bf16" (or "generic" when forced), nullptr where this CPU
// has neither.
const char* gemmBf16KernelName();
// Forces one ("amx_bf16", "avx512_bf16", or "generic": portable, the same arithmetic, for tests on
// CPUs without bf16; also ONESTEP_GEMM_BF16_KERNEL); false if this CPU or build cannot run it.
// "auto" goes back to the default choice; "none" acts as a CPU without bf16 (tests).
bool gemmSelectBf16Kernel(const char* name);
// bf16 elements of B [K x N] prepacked, and the packing (in parallel; any dtype, rounded to bf16).
size_t gemmPrepackBf16Elems(int64_t K, int64_t N);
void gemmPrepackBf16(const GemmB& B, int64_t K, int64_t N, uint16_t* out);
// The depth of a bf16 panel block: B's panels for depths [k0, k0 + this) of a multiple k0 are one
// contiguous prepacked matrix of their own (PrepackedB at data + k0 * roundUp(N, 32)).
int64_t gemmBf16DepthBlock();
// Rows per block that suit the bf16 kernel in use.
int64_t gemmBf16RowBlock();
// Elements from one row of a bf16 A (GemmA::bf16) to the next.
int64_t gemmBf16RowStride();

// Rows per block that suit the micro-kernel in use (a multiple of its MR), and its MR.
int64_t gemmRowBlock();
int64_t gemmMicroRows();

// Rows [0, M) split for `threads` threads taking one block at a time (parallelForEach): blocks of
// whole groups of `group` rows (a micro-kernel's tile), at most maxRows rows where the threads
// allow, as many blocks as a multiple of the threads (while there are groups enough), their group
// counts differing by at most one, the larger first. Blocks of maxRows and a short last one leave a
// thread idle for up to a block at the end (at 256 rows of 14-row tiles, 2 threads: 11 tiles
// against 8).
struct RowBlocks {
  int64_t M = 0, group = 1, count = 0, base = 0, extra = 0;
  int64_t begin(int64_t b) const { return std::min(M, (b * base + std::min(b, extra)) * group); }
  int64_t end(int64_t b) const { return begin(b + 1); }
};
RowBlocks balancedRowBlocks(int64_t M, int64_t maxRows, int64_t group, int threads);

// Name of the micro-kernel in use ("avx512", "avx2", "generic").
const char* gemmKernelName();
// Forces a kernel ("avx512", "avx2", "generic"); false if this CPU or build cannot run it.
bool gemmSelectKernel(const char* name);
// C = A * B^T with B [N, K] in dtype, repeated for `seconds` after a warm-up: GFLOP/s (gemm_bench.cc).
// schedule: "packed" (B packed per call), "prepacked" (packed once, as a plan does), "bf16" (bf16 panels).
double gemmBenchmark(int64_t M, int64_t N, int64_t K, DType dtype, double seconds, const std::string& schedule = "packed");
// The float32 kernel's FMA ceiling in GFLOP/s on every thread of the pool at once, measured for
// `seconds` (GemmKernel::fmaLoop): what a GEMM's GFLOP/s is a fraction of.
double gemmFmaPeak(double seconds);

// A micro-kernel computes an MR x NR tile: C (ldc) = [C +] Ap (kc x MR, packed) * Bp (kc x NR, packed).
// A depth segment of a tile: a packed A micro-panel (rows mr apart), a B panel (F32 or F16) and
// their depth.
struct GemmSeg {
  const float* a;
  const void* b;
  int64_t k;
};

struct GemmKernel {
  const char* name;
  int mr;
  int nr;
  int kc;  // depth of one packed block
  int mc;  // rows of A per packed block (a multiple of mr)
  void (*micro)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate);
  // The same with F16 B panels (nullptr: none; then F16 weights are packed per call).
  void (*microH)(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate);
  // A panel of at most mrLow rows (the last of M = 77, say): computes mrLow rows only, reading A
  // with the full panel's stride mr (mrLow 0: none; the full kernel runs on the zero-padded rows).
  int mrLow;
  void (*microLow)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate);
  void (*microLowH)(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate);
  // Optional SIMD packing (nullptr = portable loops):
  // dst[k * mr + i] = rows[i][k] for i < h (zero for h <= i < mr, and for a null row), k < run.
  void (*packRows)(const float* const* rows, int64_t h, int64_t run, float* dst);
  // One B panel from [N][K] storage: dst[k * nr + j] = B[j][k] for j < w (zero beyond), k < kc;
  // `b` points at row 0, column k0, rows `ld` elements apart.
  void (*packBnk)(const void* b, DType dtype, int64_t ld, int64_t w, int64_t kc, float* dst);
  // The same from F16 storage into an F16 panel (prepacking; nullptr = portable loops).
  void (*packBnkH)(const uint16_t* b, int64_t ld, int64_t w, int64_t kc, uint16_t* dst);
  // Few columns (gemmNarrow; nullptr: none): rows [m, m+h) of the dense C (c: row m) x all N <=
  // kGemmNarrowMaxN columns = A's rows * B^T, B float32 [N][K]; no epilogue.
  void (*narrow)(const GemmA& A, int64_t m, int64_t h, int64_t N, int64_t K, const float* B, float* c);
  // One tile over n >= 1 depth segments in one call (nullptr: none): C[rows x nr] = [C +] the sum
  // over the segments of A micro-panel x B panel, the accumulators kept in registers from the first
  // segment to the last; rows mr, or mrLow where `low`; B panels F16 where `half`, else F32.
  void (*microSeg)(const GemmSeg* segs, int64_t n, float* c, int64_t ldc, bool accumulate, bool half, bool low);
  // The CPU's FMA ceiling for this kernel's vectors (nullptr: none): `iters` rounds of as many
  // independent register FMAs as the micro-kernel has accumulators, no memory operand; returns the
  // flops done (the accumulators' sum goes to *sink).
  double (*fmaLoop)(int64_t iters, float* sink);
};

const GemmKernel* gemmKernelGeneric();
const GemmKernel* gemmKernelAvx2();    // nullptr where not compiled
const GemmKernel* gemmKernelAvx512();  // nullptr where not compiled

}  // namespace onestep
