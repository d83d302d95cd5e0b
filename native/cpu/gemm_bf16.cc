// bfloat16 products for the CPU backend: operands rounded to bf16 (nearest even), accumulated in
// float32. The driver (weights prepacked once into the one bf16 panel layout; A rounded while it
// is packed), the kernel choice, and the portable kernel (the same arithmetic as the SIMD ones, for
// tests on any CPU). The AMX-BF16 and AVX512_BF16 kernels are in gemm_bf16_x86.cc.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../core/aligned.h"
#include "../core/error.h"
#include "../core/half.h"
#include "cpu_info.h"
#include "gemm.h"
#include "gemm_internal.h"
#include "vecmath.h"
#include "thread_pool.h"

namespace onestep {

namespace {

// ---- portable kernel: products of bf16 values summed in float32 ------------------------------
constexpr int kGenMr = 4;

void microGeneric(int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc, bool accumulate) {
  float acc[kGenMr][kBf16Nr];
  for (int i = 0; i < kGenMr; ++i)
    for (int j = 0; j < kBf16Nr; ++j) acc[i][j] = accumulate ? c[i * ldc + j] : 0.0f;
  for (int64_t kp = 0; kp < kcp / 2; ++kp) {
    const uint16_t* b = bp + kp * kBf16Nr * 2;
    for (int i = 0; i < kGenMr; ++i) {
      const uint16_t* a = ap + i * kBf16Lda + 2 * kp;
      const float a0 = bf16ToFloat(a[0]), a1 = bf16ToFloat(a[1]);
      for (int j = 0; j < kBf16Nr; ++j) acc[i][j] += a0 * bf16ToFloat(b[j * 2]) + a1 * bf16ToFloat(b[j * 2 + 1]);
    }
  }
  for (int i = 0; i < kGenMr; ++i)
    for (int j = 0; j < kBf16Nr; ++j) c[i * ldc + j] = acc[i][j];
}

void packRowsGeneric(const float* const* rows, int64_t h, int64_t run, int64_t off, uint16_t* panel) {
  for (int64_t i = 0; i < h; ++i) {
    uint16_t* dst = panel + i * kBf16Lda + off;
    if (!rows[i]) std::memset(dst, 0, (size_t)run * sizeof(uint16_t));
    else
      for (int64_t k = 0; k < run; ++k) dst[k] = floatToBf16(rows[i][k]);
  }
}

const GemmKernelBf16 kGeneric = {"generic", kGenMr, 64, microGeneric, packRowsGeneric, nullptr, nullptr};

bool has(const char* f) {
  const CpuInfo& cpu = cpuInfo();
  return std::find(cpu.simd.begin(), cpu.simd.end(), f) != cpu.simd.end();
}

const GemmKernelBf16* kernelNamed(const std::string& n) {
  if (n == "generic") return &kGeneric;
  if (n == "avx512_bf16" && has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512bf16")) return gemmKernelBf16Avx512();
  if (n == "amx_bf16" && has("amx_bf16") && has("amx_tile") && has("avx512bf16") && gemmKernelBf16Amx() && amxPermitted())
    return gemmKernelBf16Amx();
  return nullptr;
}

std::atomic<const GemmKernelBf16*> gKernel{nullptr};
std::atomic<bool> gChosen{false};

const GemmKernelBf16* pickKernel() {
  if (gChosen.load()) return gKernel.load();
  const GemmKernelBf16* k = nullptr;
  const char* env = std::getenv("ONESTEP_GEMM_BF16_KERNEL");
  if (env && std::string(env) != "auto" && std::string(env) != "none") {
    k = kernelNamed(env);
    check(k != nullptr, "ERR_ONESTEP_UNSUPPORTED", "ONESTEP_GEMM_BF16_KERNEL=", env,
          ": not a bf16 kernel this CPU can run (amx_bf16, avx512_bf16, generic; none, auto)");
  } else if (!env || std::string(env) != "none") {
    k = kernelNamed("amx_bf16");
    if (!k) k = kernelNamed("avx512_bf16");
  }
  gKernel.store(k);
  gChosen.store(true);
  return k;
}

thread_local ScratchBuffer tPackA;

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// C tile (h x w at c, ldc) of one micro-kernel call, through a 32 x 32 buffer at the edges
void microTile(const GemmKernelBf16& kr, int64_t kcp, const uint16_t* ap, const uint16_t* bp, float* c, int64_t ldc,
               int64_t h, int64_t w, bool accumulate) {
  if (h == kr.mr && w == kBf16Nr) return kr.micro(kcp, ap, bp, c, ldc, accumulate);
  alignas(64) float edge[32 * kBf16Nr];
  if (accumulate)
    for (int64_t r = 0; r < h; ++r) std::memcpy(edge + r * kBf16Nr, c + r * ldc, w * sizeof(float));
  kr.micro(kcp, ap, bp, edge, kBf16Nr, accumulate);
  for (int64_t r = 0; r < h; ++r) std::memcpy(c + r * ldc, edge + r * kBf16Nr, w * sizeof(float));
}

}  // namespace

const GemmKernelBf16* gemmKernelBf16Generic() { return &kGeneric; }

int64_t gemmBf16DepthBlock() { return kBf16Kc; }
int64_t gemmBf16RowStride() { return kBf16Lda; }

int64_t gemmBf16RowBlock() {
  const GemmKernelBf16* k = pickKernel();
  return k ? k->mc : kGeneric.mc;
}

const char* gemmBf16KernelName() {
  const GemmKernelBf16* k = pickKernel();
  return k ? k->name : nullptr;
}

bool gemmSelectBf16Kernel(const char* name) {
  if (std::string(name) == "auto") {  // the choice made afresh (the environment, then the CPU)
    gChosen.store(false);
    return true;
  }
  const GemmKernelBf16* k = nullptr;
  if (std::string(name) != "none") {  // "none": as on a CPU without bf16 (tests of the refusal)
    k = kernelNamed(name);
    if (!k) return false;
  }
  gKernel.store(k);
  gChosen.store(true);
  return true;
}

size_t gemmPrepackBf16Elems(int64_t K, int64_t N) {
  return (size_t)(roundUp(std::max<int64_t>(K, 1), 32) * roundUp(N, kBf16Nr));
}

void gemmPrepackBf16(const GemmB& B, int64_t K, int64_t N, uint16_t* out) {
  check(B.dtype == DType::F32 || B.dtype == DType::F16 || B.dtype == DType::BF16, "ERR_ONESTEP_INTERNAL",
        "gemm: cannot prepack ", dtypeName(B.dtype), " weights as bf16");
  const int64_t Kp = roundUp(std::max<int64_t>(K, 1), 32), panels = roundUp(N, kBf16Nr) / kBf16Nr;
  const int64_t blocks = (Kp + kBf16Kc - 1) / kBf16Kc;
  const size_t es = B.dtype == DType::F32 ? sizeof(float) : sizeof(uint16_t);
  const uint8_t* src = static_cast<const uint8_t*>(B.data);
  const VecMath& vm = vecMath();
  ThreadPool::global().parallelFor(blocks * panels, 1, [&](int64_t begin, int64_t end, int) {
    uint16_t rowA[kBf16Kc], rowB[kBf16Nr];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t kb = t / panels, p = t % panels;
      const int64_t k0 = kb * kBf16Kc, kcp = std::min(kBf16Kc, Kp - k0), kin = std::clamp<int64_t>(K - k0, 0, kcp);
      const int64_t n0 = p * kBf16Nr, w = std::min<int64_t>(kBf16Nr, N - n0);
      uint16_t* dst = out + k0 * panels * kBf16Nr + p * kcp * kBf16Nr;
      // in the order B is stored, a run of it rounded to bf16 at a time (vectorised): column by
      // column for an [N][K] weight, row by row for [K][N]
      if (B.nk) {
        for (int64_t j = 0; j < kBf16Nr; ++j) {
          const bool in = j < w && kin > 0;
          if (in) vm.toBf16(src + ((n0 + j) * B.ld + k0) * es, B.dtype, kin, rowA);
          std::fill(rowA + (in ? kin : 0), rowA + kcp, (uint16_t)0);
          // the depth pair (kk, kk + 1) of column j, one 32-bit move
          for (int64_t kk = 0; kk < kcp; kk += 2) std::memcpy(dst + kk * kBf16Nr + j * 2, rowA + kk, 2 * sizeof(uint16_t));
        }
      } else {
        for (int64_t kk = 0; kk < kcp; ++kk) {
          if (kk < kin) vm.toBf16(src + ((k0 + kk) * B.ld + n0) * es, B.dtype, w, rowB);
          std::fill(rowB + (kk < kin ? w : 0), rowB + kBf16Nr, (uint16_t)0);
          uint16_t* row = dst + (kk / 2) * kBf16Nr * 2 + (kk & 1);
          for (int64_t j = 0; j < kBf16Nr; ++j) row[j * 2] = rowB[j];
        }
      }
    }
  });
}

void gemmPrepackedBf16(int64_t M, const GemmA& A, const PrepackedB& B, float* C, int64_t ldc, const GemmEpilogue& ep,
                       bool parallel) {
  const GemmKernelBf16* kp = pickKernel();
  check(kp != nullptr, "ERR_ONESTEP_UNSUPPORTED", "gemm: bf16 weights on a CPU without AVX512_BF16 or AMX-BF16");
  const GemmKernelBf16& kr = *kp;
  const int64_t N = B.N, K = B.K;
  const int64_t Kp = roundUp(std::max<int64_t>(K, 1), 32), panels = roundUp(N, kBf16Nr) / kBf16Nr;
  const int64_t allPanels = B.allPanels ? B.allPanels : panels;
  check(B.firstPanel >= 0 && B.firstPanel + panels <= allPanels, "ERR_ONESTEP_INTERNAL", "gemm: a bf16 B view past its panels");
  const int64_t blocks = (Kp + kBf16Kc - 1) / kBf16Kc;
  const int mr = kr.mr;
  check(!A.bf16 || A.bf16Rows >= roundUp(M, 32), "ERR_ONESTEP_INTERNAL", "gemm: a bf16 A of ", A.bf16Rows, " rows for ", M);
  const uint16_t* bdata = static_cast<const uint16_t*>(B.data);
  const int64_t panelElems = mr * kBf16Lda;
  // rows [m0, m0 + mcur) of A, depths [k0, k0 + kc) of the block (kcp with its zeros), packed
  auto packA = [&](int64_t m0, int64_t mcur, int64_t k0, int64_t kc, int64_t kcp) {
    const int64_t mPanels = (mcur + mr - 1) / mr;
    uint16_t* ap = reinterpret_cast<uint16_t*>(tPackA.get((size_t)((mPanels * panelElems + 1) / 2)));
    for (int64_t ip = 0; ip < mPanels; ++ip) {
      const int64_t h = std::min<int64_t>(mr, mcur - ip * mr);
      uint16_t* panel = ap + ip * panelElems;
      if (kc > 0)
        forEachRowRun(A, m0 + ip * mr, h, k0, kc, [&](const float* const* rows, int64_t run, int64_t off) {
          kr.packRows(rows, h, run, off, panel);
        });
      // zeros past the depth (up to the block's multiple of 32) and in rows past the matrix
      if (kc < kcp)
        for (int64_t i = 0; i < h; ++i) std::memset(panel + i * kBf16Lda + kc, 0, (size_t)(kcp - kc) * sizeof(uint16_t));
      for (int64_t i = h; i < mr; ++i) std::memset(panel + i * kBf16Lda, 0, (size_t)kcp * sizeof(uint16_t));
    }
    return static_cast<const uint16_t*>(ap);
  };
  auto task = [&](int64_t m0, int64_t mcur, int64_t p0, int64_t p1, int64_t kb0, int64_t kb1, bool panelsOuter) {
    const int64_t mPanels = (mcur + mr - 1) / mr;
    if (kr.begin) kr.begin();
    for (int64_t kb = kb0; kb < kb1; ++kb) {
      const int64_t k0 = kb * kBf16Kc, kcp = std::min(kBf16Kc, Kp - k0), kc = std::max<int64_t>(0, std::min(kcp, K - k0));
      const uint16_t* ap = A.bf16 ? A.bf16 + (kb * A.bf16Rows + m0) * kBf16Lda : packA(m0, mcur, k0, kc, kcp);
      const uint16_t* bblock = bdata + k0 * allPanels * kBf16Nr + B.firstPanel * kcp * kBf16Nr;
      const bool accumulate = kb > 0, last = kb + 1 == blocks;
      forEachTile(mPanels, p0, p1, panelsOuter, [&](int64_t ip, int64_t jp) {
        const int64_t i = ip * mr, h = std::min<int64_t>(mr, mcur - i);
        const int64_t j = jp * kBf16Nr, w = std::min<int64_t>(kBf16Nr, N - j);
        float* c = C + (m0 + i) * ldc + j;
        microTile(kr, kcp, ap + ip * panelElems, bblock + jp * kcp * kBf16Nr, c, ldc, h, w, accumulate);
        if (last) applyEpilogue(ep, c, ldc, m0 + i, j, h, w);
      });
    }
    if (kr.end) kr.end();
  };
  splitPrepacked(M, panels, blocks, kr.mc, mr, parallel, task);
}

}  // namespace onestep
