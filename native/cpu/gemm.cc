#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "../core/error.h"
#include "../core/half.h"
#include "cpu_info.h"
#include "thread_pool.h"

namespace onestep {

namespace {

// ---- per-thread packing buffers -----------------------------------------------------------
struct AlignedBuffer {
  float* ptr = nullptr;
  size_t cap = 0;
  ~AlignedBuffer() { std::free(ptr); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(ptr);
      const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
      ptr = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!ptr) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = n;
    }
    return ptr;
  }
};
thread_local AlignedBuffer tPackA, tPackB;

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

void packB(const GemmB& B, int64_t k0, int64_t kc, int64_t n0, int64_t nc, int nr, float* out) {
  switch (B.dtype) {
    case DType::F32: return packBTyped<DType::F32>(B, k0, kc, n0, nc, nr, out);
    case DType::F16: return packBTyped<DType::F16>(B, k0, kc, n0, nc, nr, out);
    case DType::BF16: return packBTyped<DType::BF16>(B, k0, kc, n0, nc, nr, out);
    default: fail("ERR_ONESTEP_DTYPE", "gemm: B cannot be ", dtypeName(B.dtype));
  }
}

// Packs A[m0:m0+mc, k0:k0+kc] into panels of MR rows: out[panel][k][MR], zero-padded.
void packADense(const float* A, int64_t lda, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int mr, float* out) {
  for (int64_t p = 0; p < mc; p += mr) {
    const int64_t h = std::min<int64_t>(mr, mc - p);
    float* dst = out + (p / mr) * kc * mr;
    for (int64_t i = 0; i < h; ++i) {
      const float* src = A + (m0 + p + i) * lda + k0;
      for (int64_t k = 0; k < kc; ++k) dst[k * mr + i] = src[k];
    }
    for (int64_t i = h; i < mr; ++i)
      for (int64_t k = 0; k < kc; ++k) dst[k * mr + i] = 0.0f;
  }
}

// The same for a convolution: row m = output pixel, k = (ky, kx, ci); runs of ci are contiguous
// in the NHWC input, padding reads zeros.
void packAConv(const ConvGeom& g, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int mr, float* out) {
  const int64_t Hu = g.H * g.up, Wu = g.W * g.up;
  for (int64_t p = 0; p < mc; p += mr) {
    const int64_t h = std::min<int64_t>(mr, mc - p);
    float* dst = out + (p / mr) * kc * mr;
    for (int64_t i = 0; i < h; ++i) {
      const int64_t m = m0 + p + i;
      const int64_t ox = m % g.Wo, oy = (m / g.Wo) % g.Ho, b = m / (g.Wo * g.Ho);
      int64_t k = k0;
      while (k < k0 + kc) {
        const int64_t tap = k / g.C, ci = k % g.C;
        const int64_t run = std::min(g.C - ci, k0 + kc - k);
        const int64_t ky = tap / g.kw, kx = tap % g.kw;
        const int64_t iy = oy * g.sh + ky - g.pt, ix = ox * g.sw + kx - g.pl;
        float* d = dst + (k - k0) * mr + i;
        if (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) {
          for (int64_t r = 0; r < run; ++r) d[r * mr] = 0.0f;
        } else {
          const float* src = g.x + ((b * g.H + iy / g.up) * g.W + ix / g.up) * g.C + ci;
          for (int64_t r = 0; r < run; ++r) d[r * mr] = src[r];
        }
        k += run;
      }
    }
    for (int64_t i = h; i < mr; ++i)
      for (int64_t k = 0; k < kc; ++k) dst[k * mr + i] = 0.0f;
  }
}

void packA(const GemmA& A, int64_t m0, int64_t mc, int64_t k0, int64_t kc, int mr, float* out) {
  if (A.conv) packAConv(*A.conv, m0, mc, k0, kc, mr, out);
  else packADense(A.data, A.ld, m0, mc, k0, kc, mr, out);
}

void applyEpilogue(const GemmEpilogue& ep, float* c, int64_t ldc, int64_t m0, int64_t n0, int64_t h, int64_t w) {
  for (int64_t i = 0; i < h; ++i) {
    float* row = c + i * ldc;
    for (int64_t j = 0; j < w; ++j) {
      float v = row[j] * ep.alpha;
      if (ep.bias) v += ep.bias[n0 + j];
      v = applyAct(ep.act, v);
      if (ep.residual) v += ep.residual[(m0 + i) * ep.ldr + n0 + j];
      row[j] = v;
    }
  }
}

// ---- portable micro-kernel ------------------------------------------------------------------
constexpr int kGenMR = 4;
constexpr int kGenNR = 16;
void microGeneric(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, bool accumulate) {
  float acc[kGenMR][kGenNR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = ap + k * kGenMR;
    const float* b = bp + k * kGenNR;
    for (int i = 0; i < kGenMR; ++i)
      for (int j = 0; j < kGenNR; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < kGenMR; ++i)
    for (int j = 0; j < kGenNR; ++j) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}
const GemmKernel kGeneric = {"generic", kGenMR, kGenNR, 256, 64, microGeneric};

std::atomic<const GemmKernel*> gKernel{nullptr};

const GemmKernel* pickKernel() {
  const GemmKernel* k = gKernel.load();
  if (k) return k;
  const char* forced = std::getenv("ONESTEP_GEMM_KERNEL");
  if (!(forced && gemmSelectKernel(forced))) {
    const CpuInfo& cpu = cpuInfo();
    auto has = [&](const char* f) { return std::find(cpu.simd.begin(), cpu.simd.end(), f) != cpu.simd.end(); };
    if (has("avx512f") && gemmKernelAvx512()) k = gemmKernelAvx512();
    else if (has("avx2") && has("fma") && gemmKernelAvx2()) k = gemmKernelAvx2();
    else k = &kGeneric;
    gKernel.store(k);
  }
  return gKernel.load();
}

// One tile of C: rows [m0, m0+mc), columns [n0, n0+nc), the whole K.
void gemmTile(const GemmKernel& kr, int64_t m0, int64_t mc, int64_t n0, int64_t nc, int64_t K, const GemmA& A,
              const GemmB& B, float* C, int64_t ldc, const GemmEpilogue& ep) {
  const int mr = kr.mr, nr = kr.nr;
  const int64_t kcMax = std::min<int64_t>(kr.kc, std::max<int64_t>(K, 1));
  const int64_t mPanels = (mc + mr - 1) / mr, nPanels = (nc + nr - 1) / nr;
  float* bp = tPackB.get((size_t)(nPanels * nr * kcMax));
  float* ap = tPackA.get((size_t)(mPanels * mr * kcMax));
  float edge[32 * 32];
  if (K == 0) {
    for (int64_t i = 0; i < mc; ++i) std::memset(C + (m0 + i) * ldc + n0, 0, nc * sizeof(float));
  }
  for (int64_t k0 = 0; k0 < K; k0 += kcMax) {
    const int64_t kc = std::min<int64_t>(kcMax, K - k0);
    const bool first = k0 == 0, last = k0 + kc >= K;
    packB(B, k0, kc, n0, nc, nr, bp);
    packA(A, m0, mc, k0, kc, mr, ap);
    for (int64_t jp = 0; jp < nPanels; ++jp) {
      const int64_t j = jp * nr, w = std::min<int64_t>(nr, nc - j);
      for (int64_t ip = 0; ip < mPanels; ++ip) {
        const int64_t i = ip * mr, h = std::min<int64_t>(mr, mc - i);
        float* c = C + (m0 + i) * ldc + n0 + j;
        if (h == mr && w == nr) {
          kr.micro(kc, ap + ip * kc * mr, bp + jp * kc * nr, c, ldc, !first);
        } else {
          if (!first)
            for (int64_t r = 0; r < h; ++r) std::memcpy(edge + r * nr, c + r * ldc, w * sizeof(float));
          kr.micro(kc, ap + ip * kc * mr, bp + jp * kc * nr, edge, nr, !first);
          for (int64_t r = 0; r < h; ++r) std::memcpy(c + r * ldc, edge + r * nr, w * sizeof(float));
        }
        if (last) applyEpilogue(ep, c, ldc, m0 + i, n0 + j, h, w);
      }
    }
  }
  if (K == 0) {
    for (int64_t i = 0; i < mc; i += 1) applyEpilogue(ep, C + (m0 + i) * ldc + n0, ldc, m0 + i, n0, 1, nc);
  }
}

}  // namespace

const GemmKernel* gemmKernelGeneric() { return &kGeneric; }

const char* gemmKernelName() { return pickKernel()->name; }

bool gemmSelectKernel(const char* name) {
  const std::string n = name;
  const GemmKernel* k = nullptr;
  const CpuInfo& cpu = cpuInfo();
  auto has = [&](const char* f) { return std::find(cpu.simd.begin(), cpu.simd.end(), f) != cpu.simd.end(); };
  if (n == "generic") k = &kGeneric;
  else if (n == "avx2" && has("avx2") && has("fma")) k = gemmKernelAvx2();
  else if (n == "avx512" && has("avx512f")) k = gemmKernelAvx512();
  if (!k) return false;
  gKernel.store(k);
  return true;
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
  // Tiles: mc rows (a multiple of mr) x nc columns (a multiple of nr), enough of them to keep
  // every thread busy.
  ThreadPool& pool = ThreadPool::global();
  const int threads = parallel ? pool.size() : 1;
  int64_t mc = kr.mc;
  int64_t nc = std::min<int64_t>(N, 1024);
  nc = ((nc + kr.nr - 1) / kr.nr) * kr.nr;
  auto tiles = [&]() { return ((M + mc - 1) / mc) * ((N + nc - 1) / nc); };
  while (threads > 1 && tiles() < 2 * threads && nc > kr.nr) nc = std::max<int64_t>(kr.nr, ((nc / 2 + kr.nr - 1) / kr.nr) * kr.nr);
  while (threads > 1 && tiles() < 2 * threads && mc > kr.mr) mc = std::max<int64_t>(kr.mr, ((mc / 2 + kr.mr - 1) / kr.mr) * kr.mr);
  const int64_t mTiles = (M + mc - 1) / mc, nTiles = (N + nc - 1) / nc;
  auto body = [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tm = t % mTiles, tn = t / mTiles;
      const int64_t m0 = tm * mc, n0 = tn * nc;
      gemmTile(kr, m0, std::min(mc, M - m0), n0, std::min(nc, N - n0), K, A, B, C, ldc, e);
    }
  };
  if (threads > 1) pool.parallelFor(mTiles * nTiles, 1, body);
  else body(0, mTiles * nTiles, 0);
  if (prior) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] += prior[i * N + j];
  }
}

}  // namespace onestep
