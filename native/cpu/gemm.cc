#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "cpu_info.h"
#include "gemm_internal.h"
#include "vecmath.h"
#include "thread_pool.h"
#include "../core/aligned.h"

namespace onestep {

namespace {

// ---- per-thread packing buffers -----------------------------------------------------------
thread_local ScratchBuffer tPackA, tPackB;
thread_local ScratchBuffer tSharedA;  // A packed once for all threads (gemmPrepacked, few rows)

// ---- B element loads ----------------------------------------------------------------------
template <DType T>
inline float loadB(const void* base, int64_t idx);
template <>
inline float loadB<DType::F32>(const void* base, int64_t idx) {
  return static_cast<const float*>(base)[idx];
}
template <>
inline float loadB<DType::F16>(const void* base, int64_t idx) {
  return halfToFloat(static_cast<const uint16_t*>(base)[idx]);
}
template <>
inline float loadB<DType::BF16>(const void* base, int64_t idx) {
  return bf16ToFloat(static_cast<const uint16_t*>(base)[idx]);
}

// Packs B[k0:k0+kc, n0:n0+nc] into panels of NR columns: out[panel][k][NR], zero-padded.
template <DType T>
void packBTyped(const GemmB& B, int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* out) {
  for (int64_t p = 0; p < nc; p += nr) {
    const int64_t w = std::min<int64_t>(nr, nc - p);
    float* dst = out + (p / nr) * kc * nr;
    if (B.nk) {
      // stored [N][K]: column n of B is row n of storage
      for (int64_t j = 0; j < w; ++j) {
        const int64_t row = (n0 + p + j) * B.ld + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = loadB<T>(B.data, row + k);
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t row = (k0 + k) * B.ld + n0 + p;
        float* d = dst + k * nr;
        for (int64_t j = 0; j < w; ++j) d[j] = loadB<T>(B.data, row + j);
      }
    }
    if (w < nr) {
      for (int64_t k = 0; k < kc; ++k) std::memset(dst + k * nr + w, 0, (nr - w) * sizeof(float));
    }
  }
}

void packB(const GemmKernel& kr, const GemmB& B, int64_t k0, int64_t kc, int64_t n0, int64_t nc, float* out) {
  const int nr = kr.nr;
  check(B.dtype == DType::F32 || B.dtype == DType::F16 || B.dtype == DType::BF16, "ERR_ONESTEP_DTYPE", "gemm: B cannot be ",
        dtypeName(B.dtype));
  if (B.nk && kr.packBnk) {
    const size_t es = dtypeSize(B.dtype);
    for (int64_t p = 0; p < nc; p += nr) {
      const uint8_t* base = static_cast<const uint8_t*>(B.data) + ((n0 + p) * B.ld + k0) * (int64_t)es;
      kr.packBnk(base, B.dtype, B.ld, std::min<int64_t>(nr, nc - p), kc, out + (p / nr) * kc * nr);
    }
    return;
  }
  switch (B.dtype) {
    case DType::F32: return packBTyped<DType::F32>(B, k0, kc, n0, nc, nr, out);
    case DType::F16: return packBTyped<DType::F16>(B, k0, kc, n0, nc, nr, out);
    case DType::BF16: return packBTyped<DType::BF16>(B, k0, kc, n0, nc, nr, out);
    default: fail("ERR_ONESTEP_DTYPE", "gemm: B cannot be ", dtypeName(B.dtype));
  }
}

// dst[k * mr + i] = rows[i][k] (portable version of GemmKernel::packRows).
void packRowsGeneric(const float* const* rows, int64_t h, int64_t run, int mr, float* dst) {
  for (int64_t i = 0; i < mr; ++i) {
    const float* src = i < h ? rows[i] : nullptr;
    if (src)
      for (int64_t k = 0; k < run; ++k) dst[k * mr + i] = src[k];
    else
      for (int64_t k = 0; k < run; ++k) dst[k * mr + i] = 0.0f;
  }
}

// Packs A[m0:m0+mc, k0:k0+kc] into panels of MR rows: out[panel][k][MR], zero-padded (padding
// rows of a convolution read as zeros).
void packA(const GemmKernel& kr, const GemmA& A, int64_t m0, int64_t mc, int64_t k0, int64_t kc, float* out) {
  const int mr = kr.mr;
  for (int64_t p = 0; p < mc; p += mr) {
    const int64_t h = std::min<int64_t>(mr, mc - p);
    float* dst = out + (p / mr) * kc * mr;
    forEachRowRun(A, m0 + p, h, k0, kc, [&](const float* const* rows, int64_t run, int64_t off) {
      if (kr.packRows) kr.packRows(rows, h, run, dst + off * mr);
      else packRowsGeneric(rows, h, run, mr, dst + off * mr);
    });
  }
}

}  // namespace

void applyEpilogue(const GemmEpilogue& ep, float* c, int64_t ldc, int64_t m0, int64_t n0, int64_t h, int64_t w) {
  if (ep.alpha == 1.0f && !ep.bias && ep.act == Act::None && !ep.residual) return;
  vecMath().epilogueRows(c, ldc, h, w, ep.alpha, ep.bias ? ep.bias + n0 : nullptr, ep.act,
                         ep.residual ? ep.residual + m0 * ep.ldr + n0 : nullptr, ep.ldr);
}

namespace {

// ---- portable micro-kernel ------------------------------------------------------------------
constexpr int kGenMR = 4;
constexpr int kGenNR = 16;
inline float panelValue(const float* p, int64_t i) { return p[i]; }
inline float panelValue(const uint16_t* p, int64_t i) { return halfToFloat(p[i]); }
template <typename BT>
void microGenericT(int64_t kc, const float* ap, const BT* bp, float* c, int64_t ldc, bool accumulate) {
  float acc[kGenMR][kGenNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = ap + k * kGenMR;
    float b[kGenNR];
    for (int j = 0; j < kGenNR; ++j) b[j] = panelValue(bp, k * kGenNR + j);
    for (int i = 0; i < kGenMR; ++i)
      for (int j = 0; j < kGenNR; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < kGenMR; ++i)
    for (int j = 0; j < kGenNR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}
void microGeneric(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  microGenericT(kc, ap, bp, c, ldc, accumulate);
}
void microGenericH(int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  microGenericT(kc, ap, bp, c, ldc, accumulate);
}
const GemmKernel kGeneric = {"generic", kGenMR, kGenNR, 256, 64, microGeneric, microGenericH, 0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

std::atomic<const GemmKernel*> gKernel{nullptr};

const GemmKernel* pickKernel() {
  const GemmKernel* k = gKernel.load();
  if (k) return k;
  const char* forced = std::getenv("ONESTEP_GEMM_KERNEL");
  if (!(forced && gemmSelectKernel(forced))) {

    if (cpuHas("avx512f") && cpuHas("avx512bw") && cpuHas("avx512vl") && cpuHas("f16c") && gemmKernelAvx512()) k = gemmKernelAvx512();
    else if (cpuHas("avx2") && cpuHas("fma") && cpuHas("f16c") && gemmKernelAvx2()) k = gemmKernelAvx2();
    else k = &kGeneric;
    gKernel.store(k);
  }
  return gKernel.load();
}

// Runs the micro-kernels over rows [m0, m0+mc) and B panels [p0, p1) of one packed depth block.
inline void microOf(const GemmKernel& kr, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
  kr.micro(kc, ap, bp, c, ldc, acc);
}
inline void microOf(const GemmKernel& kr, int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool acc) {
  kr.microH(kc, ap, bp, c, ldc, acc);
}
// a panel of h rows: the low-rows kernel where it covers them (into a buffer of nr-wide rows)
inline void microRowsOf(const GemmKernel& kr, int64_t h, int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool acc) {
  if (h <= kr.mrLow && kr.microLow) kr.microLow(kc, ap, bp, c, ldc, acc);
  else kr.micro(kc, ap, bp, c, ldc, acc);
}
inline void microRowsOf(const GemmKernel& kr, int64_t h, int64_t kc, const float* ap, const uint16_t* bp, float* c, int64_t ldc, bool acc) {
  if (h <= kr.mrLow && kr.microLowH) kr.microLowH(kc, ap, bp, c, ldc, acc);
  else kr.microH(kc, ap, bp, c, ldc, acc);
}

// the block's tiles: rows [m0, m0+mc) x B panels [p0, p1) (bp: the block's panel 0), in the order
// forEachTile gives; F16 panels are converted in the micro-kernel (microH)
inline void prefetchRow(const float* p, int64_t w) {
  for (int64_t j = 0; j < w; j += 16) __builtin_prefetch(p + j, 0, 3);
}
// What a tile's stores will read, on its way to the cache while its products run: C (at rows
// [m, m+h) x columns [n, n+w); a later depth block adds to it) and the residual (the last block's
// epilogue); text encoder ~1 % faster.
inline void prefetchTile(const float* c, int64_t ldc, const GemmEpilogue& ep, int64_t m, int64_t n, int64_t h, int64_t w, bool first,
                         bool last) {
  if (!first)
    for (int64_t r = 0; r < h; ++r) prefetchRow(c + r * ldc, w);
  if (last && ep.residual)
    for (int64_t r = 0; r < h; ++r) prefetchRow(ep.residual + (m + r) * ep.ldr + n, w);
}
template <typename BT>
void computeBlockT(const GemmKernel& kr, const float* ap, const BT* bp, int64_t kc, int64_t m0, int64_t mc, int64_t n0,
                   int64_t ncur, int64_t p0, int64_t p1, float* C, int64_t ldc, bool first, bool last, const GemmEpilogue& ep,
                   bool panelsOuter) {
  const int mr = kr.mr, nr = kr.nr;
  const int64_t mPanels = (mc + mr - 1) / mr;
  alignas(64) float edge[32 * 32];
  forEachTile(mPanels, p0, p1, panelsOuter, [&](int64_t ip, int64_t jp) {
    const int64_t i = ip * mr, h = std::min<int64_t>(mr, mc - i);
    const int64_t j = jp * nr, w = std::min<int64_t>(nr, ncur - j);
    float* c = C + (m0 + i) * ldc + n0 + j;
    prefetchTile(c, ldc, ep, m0 + i, n0 + j, h, w, first, last);
    if (h == mr && w == nr) {
      microOf(kr, kc, ap + ip * kc * mr, bp + jp * kc * nr, c, ldc, !first);
    } else {
      if (!first)
        for (int64_t r = 0; r < h; ++r) std::memcpy(edge + r * nr, c + r * ldc, w * sizeof(float));
      microRowsOf(kr, h, kc, ap + ip * kc * mr, bp + jp * kc * nr, edge, nr, !first);
      for (int64_t r = 0; r < h; ++r) std::memcpy(c + r * ldc, edge + r * nr, w * sizeof(float));
    }
    if (last) applyEpilogue(ep, c, ldc, m0 + i, n0 + j, h, w);
  });
}

// A task of the few-rows pass on a kernel with microSeg: rows [m0, m0+mcur) x panels [p0, p1) of
// prepacked B over all its depth. The depth blocks go in groups of up to kSegDepth, and each tile
// runs over a group's blocks in one micro-kernel call: its C rows are loaded and stored once per
// group instead of once per block (text encoder 0.5-1 % faster). A is `shared` (packed once for
// all threads: block kb's micro-panels at mPad * k0), or packed here group by group (fewRowsOwnA;
// ~390 KB at 84 rows, it stays in L2). Either way each element is summed in the same order, so
// the result does not depend on the thread count.
constexpr int64_t kSegDepth = 1152;
constexpr int64_t kMaxSegs = 8;
void fewRowsSegments(const GemmKernel& kr, const GemmA& A, const PrepackedB& B, const float* shared, int64_t m0, int64_t mcur, int64_t p0,
                     int64_t p1, float* C, int64_t ldc, const GemmEpilogue& ep) {
  const int mr = kr.mr, nr = kr.nr;
  const int64_t N = B.N, K = B.K, kc = kr.kc;
  const int64_t panels = (N + nr - 1) / nr, blocks = (K + kc - 1) / kc;
  const int64_t mPanels = (mcur + mr - 1) / mr, mPad = mPanels * mr;
  // the few-rows pass has one row block (so the shared A's row stride is this task's mPad)
  check(m0 == 0, "ERR_ONESTEP_INTERNAL", "gemm: few-rows segments on a row block at ", m0);
  const int64_t group = std::clamp<int64_t>(kSegDepth / kc, 1, kMaxSegs);
  const bool half = B.dtype == DType::F16;
  const size_t es = half ? sizeof(uint16_t) : sizeof(float);
  const uint8_t* bdata = static_cast<const uint8_t*>(B.data);
  float* own = shared ? nullptr : tPackA.get((size_t)(mPad * std::min(K, group * kc)));
  alignas(64) float edge[32 * 32];
  for (int64_t g0 = 0; g0 < blocks; g0 += group) {
    const int64_t g1 = std::min(blocks, g0 + group), kg0 = g0 * kc;
    // the group's A: block kb's micro-panels at mPad * (k0 - kg0), panel ip at ip * mr * kcur
    const float* buf = shared ? shared + mPad * kg0 : own;
    if (!shared)
      for (int64_t kb = g0; kb < g1; ++kb) {
        const int64_t k0 = kb * kc, kcur = std::min(kc, K - k0);
        packA(kr, A, m0, mcur, k0, kcur, own + mPad * (k0 - kg0));
      }
    const bool first = g0 == 0, last = g1 == blocks;
    GemmSeg segs[kMaxSegs];
    for (int64_t jp = p0; jp < p1; ++jp)
      for (int64_t ip = 0; ip < mPanels; ++ip) {
        const int64_t i = ip * mr, h = std::min<int64_t>(mr, mcur - i);
        const int64_t j = jp * nr, w = std::min<int64_t>(nr, N - j);
        float* c = C + (m0 + i) * ldc + j;
        prefetchTile(c, ldc, ep, m0 + i, j, h, w, first, last);
        int64_t n = 0;
        for (int64_t kb = g0; kb < g1; ++kb) {
          const int64_t k0 = kb * kc, kcur = std::min(kc, K - k0);
          segs[n++] = GemmSeg{buf + mPad * (k0 - kg0) + ip * mr * kcur, bdata + (size_t)(k0 * panels * nr + jp * kcur * nr) * es, kcur};
        }
        const bool low = h <= kr.mrLow;  // (a kernel without a low variant has mrLow 0)
        if (w == nr && (h == mr || (low && h == kr.mrLow))) {
          kr.microSeg(segs, n, c, ldc, !first, half, low);
        } else {
          if (!first)
            for (int64_t r = 0; r < h; ++r) std::memcpy(edge + r * nr, c + r * ldc, w * sizeof(float));
          kr.microSeg(segs, n, edge, nr, !first, half, low);
          for (int64_t r = 0; r < h; ++r) std::memcpy(c + r * ldc, edge + r * nr, w * sizeof(float));
        }
        if (last) applyEpilogue(ep, c, ldc, m0 + i, j, h, w);
      }
  }
}

inline void computeBlock(const GemmKernel& kr, const float* ap, const float* bp, int64_t kc, int64_t m0, int64_t mc, int64_t n0,
                         int64_t ncur, int64_t p0, int64_t p1, float* C, int64_t ldc, bool first, bool last, const GemmEpilogue& ep,
                         bool panelsOuter = false) {
  computeBlockT(kr, ap, bp, kc, m0, mc, n0, ncur, p0, p1, C, ldc, first, last, ep, panelsOuter);
}

// F16 panels converted in registers, whatever the rows: with the A values broadcast from memory
// in each FMA (gemm_avx512.cc) the conversions no longer take the FMA's issue slots, and widening
// whole panels to float first (once for several A micro-panels) was 2-4 % slower at the UNet's
// shapes (it had been 3.5-5 % faster with the earlier register broadcasts).
void computeBlock(const GemmKernel& kr, const float* ap, const uint16_t* bp, int64_t kc, int64_t m0, int64_t mc, int64_t n0,
                  int64_t ncur, int64_t p0, int64_t p1, float* C, int64_t ldc, bool first, bool last, const GemmEpilogue& ep,
                  bool panelsOuter = false) {
  computeBlockT(kr, ap, bp, kc, m0, mc, n0, ncur, p0, p1, C, ldc, first, last, ep, panelsOuter);
}

thread_local ScratchBuffer tSharedB;

}  // namespace

const GemmKernel* gemmKernelGeneric() { return &kGeneric; }

const char* gemmKernelName() { return pickKernel()->name; }

double gemmFmaPeak(double seconds) {
  check(seconds > 0 && seconds <= 600, "ERR_ONESTEP_ARGUMENT", "gemmPeak: seconds must be in (0, 600], got ", seconds);
  const GemmKernel& kr = *pickKernel();
  check(kr.fmaLoop != nullptr, "ERR_ONESTEP_UNSUPPORTED", "gemmPeak: the ", kr.name, " kernel has no FMA loop");
  using Clock = std::chrono::steady_clock;
  ThreadPool& pool = ThreadPool::global();
  const int threads = pool.size();
  std::vector<double> flops((size_t)threads, 0.0);
  std::vector<float> sinks((size_t)threads, 0.0f);
  const auto t0 = Clock::now();
  const auto until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  // one item per thread, every thread until the same moment (an item taken late runs shorter)
  pool.parallelFor(threads, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t)
      do flops[(size_t)t] += kr.fmaLoop(1 << 14, &sinks[(size_t)t]);
      while (Clock::now() < until);
  });
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / elapsed / 1e9;
}

bool gemmSelectKernel(const char* name) {
  const std::string n = name;
  const GemmKernel* k = nullptr;

  if (n == "generic") k = &kGeneric;
  else if (n == "avx2" && cpuHas("avx2") && cpuHas("fma") && cpuHas("f16c")) k = gemmKernelAvx2();
  else if (n == "avx512" && cpuHas("avx512f") && cpuHas("avx512bw") && cpuHas("avx512vl") && cpuHas("f16c")) k = gemmKernelAvx512();
  if (!k) return false;
  gKernel.store(k);
  return true;
}

size_t gemmPackedBSize(int64_t K, int64_t N) {
  const GemmKernel& kr = *pickKernel();
  return (size_t)(((N + kr.nr - 1) / kr.nr) * kr.nr * std::max<int64_t>(K, 1));
}

void gemmPackB(const GemmB& B, int64_t K, int64_t N, float* out) {
  const GemmKernel& kr = *pickKernel();
  const int64_t panels = (N + kr.nr - 1) / kr.nr;
  for (int64_t k0 = 0; k0 < K; k0 += kr.kc) packB(kr, B, k0, std::min<int64_t>(kr.kc, K - k0), 0, N, out + k0 * panels * kr.nr);
}

void gemmPackedB(int64_t M, int64_t N, int64_t K, const GemmA& A, const float* packedB, float* C, int64_t ldc,
                 const GemmEpilogue& ep) {
  const GemmKernel& kr = *pickKernel();
  const int64_t panels = (N + kr.nr - 1) / kr.nr;
  for (int64_t k0 = 0; k0 < K; k0 += kr.kc) {
    const int64_t kc = std::min<int64_t>(kr.kc, K - k0);
    for (int64_t m0 = 0; m0 < M; m0 += kr.mc) {
      const int64_t mcur = std::min<int64_t>(kr.mc, M - m0);
      float* ap = tPackA.get((size_t)(((mcur + kr.mr - 1) / kr.mr) * kr.mr * kc));
      packA(kr, A, m0, mcur, k0, kc, ap);
      computeBlock(kr, ap, packedB + k0 * panels * kr.nr, kc, m0, mcur, 0, N, 0, panels, C, ldc, k0 == 0, k0 + kc >= K, ep);
    }
  }
}

namespace {
const GemmKernel* kernelById(int id) {
  const GemmKernel* k = id == 2 ? gemmKernelAvx512() : id == 1 ? gemmKernelAvx2() : &kGeneric;
  check(k != nullptr, "ERR_ONESTEP_INTERNAL", "gemm: weights packed for a kernel this build lacks");
  return k;
}
}  // namespace

int gemmPrepackKernel() {
  const GemmKernel* k = pickKernel();
  return k == gemmKernelAvx512() ? 2 : k == gemmKernelAvx2() ? 1 : 0;
}

DType gemmPrepackDtype(DType weight) {
  if (weight == DType::F32) return DType::F32;
  if (weight == DType::F16 && pickKernel()->microH) return DType::F16;
  return DType::I64;
}

size_t gemmPrepackElems(int64_t K, int64_t N) { return gemmPackedBSize(K, N); }

size_t gemmPrepackElems(int64_t K, int64_t N, int kernel) {
  const GemmKernel& kr = *kernelById(kernel);
  return (size_t)(((N + kr.nr - 1) / kr.nr) * kr.nr * std::max<int64_t>(K, 1));
}

int64_t gemmPrepackPanelWidth() { return pickKernel()->nr; }

void gemmPrepackBColumns(const GemmB& B, int64_t K, int64_t N, int64_t n0, int64_t w, float* out) {
  const GemmKernel& kr = *pickKernel();
  const int nr = kr.nr;
  check(n0 % nr == 0 && n0 >= 0 && w >= 0 && n0 + w <= N, "ERR_ONESTEP_INTERNAL", "gemmPrepackBColumns: columns ", n0, "+", w,
        " of ", N);
  const int64_t panels = (N + nr - 1) / nr;
  for (int64_t k0 = 0; k0 < K; k0 += kr.kc) {
    const int64_t kc = std::min<int64_t>(kr.kc, K - k0);
    packB(kr, B, k0, kc, 0, w, out + k0 * panels * nr + (n0 / nr) * kc * nr);  // consecutive panels, kc * nr apart
  }
}

void gemmPrepackB(const GemmB& B, int64_t K, int64_t N, DType as, void* out) {
  const GemmKernel& kr = *pickKernel();
  const int nr = kr.nr;
  const int64_t panels = (N + nr - 1) / nr, blocks = (std::max<int64_t>(K, 1) + kr.kc - 1) / kr.kc;
  check(as == DType::F32 || (as == DType::F16 && B.dtype == DType::F16 && kr.microH), "ERR_ONESTEP_INTERNAL", "gemm: cannot prepack ",
        dtypeName(B.dtype), " weights as ", dtypeName(as));
  ThreadPool::global().parallelFor(blocks * panels, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t k0 = (t / panels) * kr.kc, p = t % panels;
      const int64_t kc = std::min<int64_t>(kr.kc, K - k0), w = std::min<int64_t>(nr, N - p * nr);
      const int64_t at = k0 * panels * nr + p * kc * nr;
      if (as == DType::F32) {
        packB(kr, B, k0, kc, p * nr, w, static_cast<float*>(out) + at);
        continue;
      }
      // F16 panels: the weight's own half values, transposed into the panel layout
      const uint16_t* src = static_cast<const uint16_t*>(B.data);
      uint16_t* dst = static_cast<uint16_t*>(out) + at;
      if (B.nk && kr.packBnkH) {
        kr.packBnkH(src + p * nr * B.ld + k0, B.ld, w, kc, dst);
        continue;
      }
      for (int64_t j = 0; j < nr; ++j) {  // a row of the [N][K] weight at a time: read in order
        const int64_t n = p * nr + j;
        if (j >= w) {
          for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = 0;
        } else if (B.nk) {
          const uint16_t* row = src + n * B.ld + k0;
          for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = row[k];
        } else {
          for (int64_t k = 0; k < kc; ++k) dst[k * nr + j] = src[(k0 + k) * B.ld + n];
        }
      }
    }
  });
}

void gemmPrepacked(int64_t M, const GemmA& A, const PrepackedB& B, float* C, int64_t ldc, const GemmEpilogue& ep, bool parallel) {
  const int64_t N = B.N, K = B.K;
  if (M <= 0 || N <= 0) return;
  check(!ep.accumulate, "ERR_ONESTEP_INTERNAL", "gemmPrepacked: accumulate is not supported");
  if (B.dtype == DType::BF16) return gemmPrepackedBf16(M, A, B, C, ldc, ep, parallel);
  check(!A.bf16, "ERR_ONESTEP_INTERNAL", "gemmPrepacked: a bf16 A needs bf16 panels of B");
  const GemmKernel& kr = *kernelById(B.kernel);
  check(B.dtype == DType::F32 || (B.dtype == DType::F16 && kr.microH), "ERR_ONESTEP_INTERNAL", "gemmPrepacked: bad panel dtype");
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i) {
      std::memset(C + i * ldc, 0, N * sizeof(float));
      applyEpilogue(ep, C + i * ldc, ldc, i, 0, 1, N);
    }
    return;
  }
  const int mr = kr.mr, nr = kr.nr;
  const int64_t panels = (N + nr - 1) / nr, blocks = (K + kr.kc - 1) / kr.kc;
  ThreadPool& pool = ThreadPool::global();
  // Few rows (one row block): unless each thread packs its own A (fewRowsOwnA: one chunk per
  // thread), the tasks would pack all of A for every depth block of their chunks; pack it once
  // instead, in parallel, into the caller's buffer (block kb's panels at mPad * k0), and let the
  // tasks read it.
  const float* sharedA = nullptr;
  const int64_t mPad = (M + mr - 1) / mr * mr;
  const int threads = parallel ? pool.size() : 1;
  if (M <= kr.mc && threads > 1 && !fewRowsOwnA(panels, threads)) {
    float* buf = tSharedA.get((size_t)(mPad * K));
    const int64_t rowPanels = mPad / mr;
    pool.parallelFor(blocks * rowPanels, 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t k0 = (t / rowPanels) * kr.kc, kc = std::min<int64_t>(kr.kc, K - k0), m0 = (t % rowPanels) * mr;
        packA(kr, A, m0, std::min<int64_t>(mr, M - m0), k0, kc, buf + mPad * k0 + m0 * kc);
      }
    });
    sharedA = buf;
  }
  // one task: rows [m0, m0+mcur) x panels [p0, p1) over the depth blocks [kb0, kb1)
  auto task = [&](int64_t m0, int64_t mcur, int64_t p0, int64_t p1, int64_t kb0, int64_t kb1, bool panelsOuter) {
    if (panelsOuter && kr.microSeg) return fewRowsSegments(kr, A, B, sharedA, m0, mcur, p0, p1, C, ldc, ep);
    for (int64_t kb = kb0; kb < kb1; ++kb) {
      const int64_t k0 = kb * kr.kc, kc = std::min<int64_t>(kr.kc, K - k0);
      const float* ap = sharedA ? sharedA + mPad * k0 + m0 * kc : nullptr;
      if (!ap) {
        float* own = tPackA.get((size_t)(((mcur + mr - 1) / mr) * mr * kc));
        packA(kr, A, m0, mcur, k0, kc, own);
        ap = own;
      }
      const int64_t at = k0 * panels * nr;
      if (B.dtype == DType::F16)
        computeBlock(kr, ap, static_cast<const uint16_t*>(B.data) + at, kc, m0, mcur, 0, N, p0, p1, C, ldc, k0 == 0, k0 + kc >= K, ep,
                     panelsOuter);
      else
        computeBlock(kr, ap, static_cast<const float*>(B.data) + at, kc, m0, mcur, 0, N, p0, p1, C, ldc, k0 == 0, k0 + kc >= K, ep,
                     panelsOuter);
    }
  };
  splitPrepacked(M, panels, blocks, kr.mc, mr, parallel, task);
}

void splitPrepacked(int64_t M, int64_t panels, int64_t blocks, int64_t mcDefault, int mr, bool parallel, const PrepackedTask& task) {
  ThreadPool& pool = ThreadPool::global();
  const int threads = parallel ? pool.size() : 1;
  // items of similar cost, taken one at a time (no thread left idle behind a chunk of several)
  auto run = [&](int64_t n, const std::function<void(int64_t, int64_t, int)>& f) {
    if (threads > 1) pool.parallelForEach(n, f);
    else f(0, n, 0);
  };
  if (M <= mcDefault) {
    // few rows (a text encoder's 77): one row block, threads split the panels (each reads its own
    // part of B) and run every depth block themselves: one pass, no barrier between blocks
    const int64_t mc = (M + mr - 1) / mr * mr;
    const int64_t chunks = fewRowsChunks(panels, threads);
    run(chunks, [&](int64_t begin, int64_t end, int) {
      for (int64_t ch = begin; ch < end; ++ch) {
        const int64_t p0 = panels * ch / chunks, p1 = panels * (ch + 1) / chunks;
        if (p1 > p0) task(0, std::min(mc, M), p0, p1, 0, blocks, true);
      }
    });
    return;
  }
  // many rows: depth block by depth block, the block's panels shared by all row blocks (as gemm()
  // with its packing pass gone). Row blocks of at most mcDefault rows hold whole micro-panels
  // (tiles), as many blocks as a multiple of the threads and their tile counts differing by at
  // most one, the larger first: so that every thread, taking one block at a time, gets the same
  // share (blocks of mcDefault rows and a short last one left one thread ~10 % idle at 1024 rows).
  const RowBlocks rb = balancedRowBlocks(M, mcDefault, mr, threads);
  const int64_t mBlocks = rb.count;
  // too few row blocks for the threads: split the panels too
  const int64_t chunks = std::min<int64_t>(panels, std::max<int64_t>(1, (2 * threads + mBlocks - 1) / mBlocks));
  for (int64_t kb = 0; kb < blocks; ++kb)
    run(mBlocks * chunks, [&](int64_t begin, int64_t end, int) {
      for (int64_t t = begin; t < end; ++t) {
        const int64_t ib = t / chunks, ch = t % chunks;
        const int64_t m0 = rb.begin(ib), m1 = rb.end(ib);
        const int64_t p0 = panels * ch / chunks, p1 = panels * (ch + 1) / chunks;
        if (p1 > p0 && m1 > m0) task(m0, m1 - m0, p0, p1, kb, kb + 1, false);
      }
    });
}

bool fewRowsOwnA(int64_t panels, int threads) {
  // each thread has enough panels that packing all of A itself (~0.5 / panels of its products)
  // costs less than A packed once for all threads, whose rows each thread then reads from the
  // other cores' caches, after a barrier: 2 threads of AMD Zen 4, text encoder (16 and 64 panels
  // each) 1.5-3 % faster in float32, 4 % in bf16 (where every task packed A)
  return threads > 1 && panels >= kFewRowsPanelsPerThread * threads;
}

int64_t fewRowsChunks(int64_t panels, int threads) {
  if (threads <= 1) return 1;  // one chunk, A packed once per depth block
  if (fewRowsOwnA(panels, threads)) return threads;
  return std::min<int64_t>(panels, 4 * threads);
}

int64_t gemmRowBlock() { return 4 * pickKernel()->mr; }
int64_t gemmMicroRows() { return pickKernel()->mr; }

RowBlocks balancedRowBlocks(int64_t M, int64_t maxRows, int64_t group, int threads) {
  RowBlocks r;
  r.M = std::max<int64_t>(M, 0);
  r.group = std::max<int64_t>(group, 1);
  const int64_t groups = (r.M + r.group - 1) / r.group, maxGroups = std::max<int64_t>(1, maxRows / r.group);
  if (groups == 0) return r;
  r.count = (groups + maxGroups - 1) / maxGroups;
  if (threads > 1) r.count = std::min(groups, (r.count + threads - 1) / threads * threads);
  r.base = groups / r.count;
  r.extra = groups % r.count;
  return r;
}

bool gemmNarrowAvailable() { return pickKernel()->narrow != nullptr; }

void gemmNarrow(int64_t M, int64_t N, int64_t K, const GemmA& A, const float* B, float* C, const GemmEpilogue& ep, bool parallel) {
  if (M <= 0 || N <= 0) return;
  check(N <= kGemmNarrowMaxN && K >= 0 && !ep.accumulate, "ERR_ONESTEP_INTERNAL", "gemmNarrow: ", N, " columns, depth ", K);
  const GemmKernel& kr = *pickKernel();
  if (!kr.narrow || K == 0) {
    GemmB b;
    b.data = B;
    b.dtype = DType::F32;
    b.ld = K;
    b.nk = true;
    return gemm(M, N, K, A, b, C, N, ep, parallel);
  }
  // blocks of rows: whole groups of every narrow tile (48 is a multiple of 16, 12, 8, 6, 4, 3, 2)
  constexpr int64_t kRows = 48;
  const int64_t blocks = (M + kRows - 1) / kRows;
  auto body = [&](int64_t begin, int64_t end, int) {
    for (int64_t b = begin; b < end; ++b) {
      const int64_t m0 = b * kRows, h = std::min(kRows, M - m0);
      kr.narrow(A, m0, h, N, K, B, C + m0 * N);
      applyEpilogue(ep, C + m0 * N, N, m0, 0, h, N);
    }
  };
  if (parallel && ThreadPool::global().size() > 1) ThreadPool::global().parallelFor(blocks, 1, body);
  else body(0, blocks, 0);
}

void gemm(int64_t M, int64_t N, int64_t K, const GemmA& A, const GemmB& B, float* C, int64_t ldc,
          const GemmEpilogue& ep, bool parallel) {
  if (M <= 0 || N <= 0) return;
  check(K >= 0, "ERR_ONESTEP_INTERNAL", "gemm: negative K");
  const GemmKernel& kr = *pickKernel();
  // With `accumulate`, C's prior content is added after the epilogue: stash it and add it back.
  std::unique_ptr<float[]> prior;
  GemmEpilogue e = ep;
  if (ep.accumulate) {
    prior.reset(new float[(size_t)(M * N)]);
    for (int64_t i = 0; i < M; ++i) std::memcpy(prior.get() + i * N, C + i * ldc, N * sizeof(float));
    e.accumulate = false;
  }
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i) {
      std::memset(C + i * ldc, 0, N * sizeof(float));
      applyEpilogue(e, C + i * ldc, ldc, i, 0, 1, N);
    }
  }
  ThreadPool& pool = ThreadPool::global();
  const int threads = parallel ? pool.size() : 1;
  const int mr = kr.mr, nr = kr.nr;
  // BLIS-style loops: for each column block (nc) and depth block (kc), B is packed once into a
  // buffer shared by all threads; then threads take (row block x panel range) tasks, each packing
  // its own rows of A.
  const int64_t ncMax = ((std::min<int64_t>(N, 4096) + nr - 1) / nr) * nr;
  static const int64_t envKc = std::getenv("ONESTEP_GEMM_KC") ? std::atoll(std::getenv("ONESTEP_GEMM_KC")) : 0;
  static const int64_t envMc = std::getenv("ONESTEP_GEMM_MC") ? std::atoll(std::getenv("ONESTEP_GEMM_MC")) : 0;
  const int64_t kcMax = std::min<int64_t>(envKc ? envKc : kr.kc, std::max<int64_t>(K, 1));
  float* bp = tSharedB.get((size_t)(ncMax * kcMax));
  for (int64_t n0 = 0; n0 < N; n0 += ncMax) {
    const int64_t ncur = std::min(ncMax, N - n0);
    const int64_t panels = (ncur + nr - 1) / nr;
    for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
      const int64_t kc = std::min(kcMax, K - k0);
      const bool first = k0 == 0, last = k0 + kc >= K;
      // pack B (in parallel over panel groups)
      const int64_t groups = std::min<int64_t>(panels, 4 * threads);
      auto packBody = [&](int64_t begin, int64_t end, int) {
        for (int64_t gi = begin; gi < end; ++gi) {
          const int64_t p0 = panels * gi / groups, p1 = panels * (gi + 1) / groups;
          if (p1 > p0) packB(kr, B, k0, kc, n0 + p0 * nr, std::min(ncur, p1 * nr) - p0 * nr, bp + p0 * kc * nr);
        }
      };
      if (threads > 1) pool.parallelFor(groups, 1, packBody);
      else packBody(0, groups, 0);
      // compute: row blocks x panel chunks
      int64_t mc = envMc ? envMc : kr.mc;
      if (threads > 1 && (M + mc - 1) / mc < threads) mc = std::max<int64_t>(mr, ((M + threads - 1) / threads + mr - 1) / mr * mr);
      const int64_t mBlocks = (M + mc - 1) / mc;
      const int64_t chunks = std::min<int64_t>(panels, std::max<int64_t>(1, (2 * threads + mBlocks - 1) / mBlocks));
      auto body = [&](int64_t begin, int64_t end, int) {
        for (int64_t t = begin; t < end; ++t) {
          const int64_t ib = t / chunks, ch = t % chunks;
          const int64_t m0 = ib * mc, mcur = std::min(mc, M - m0);
          const int64_t p0 = panels * ch / chunks, p1 = panels * (ch + 1) / chunks;
          float* ap = tPackA.get((size_t)(((mcur + mr - 1) / mr) * mr * kc));
          packA(kr, A, m0, mcur, k0, kc, ap);
          computeBlock(kr, ap, bp, kc, m0, mcur, n0, ncur, p0, p1, C, ldc, first, last, e);
        }
      };
      if (threads > 1) pool.parallelFor(mBlocks * chunks, 1, body);
      else body(0, mBlocks * chunks, 0);
    }
  }
  if (prior) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += prior[i * N + j];
  }
}

}  // namespace onestep
