// Warp-level tensor-core primitives below WMMA, for the kernels that need their speed (the
// FA2-style attention and pipelined GEMM of docs/CUDA.md): mma.sync m16n8k16 (fp16 or bf16
// operands, fp32 accumulation), ldmatrix (four 8x8 b16 matrices, plain or transposed) and cp.async
// (16 bytes, global to shared) with its commit / wait. On the GPU they are the PTX instructions
// (sm_80+; below that they trap); under cusim the same per-lane results, computed from the PTX
// ISA's fragment layouts with warp shuffles, so a kernel's fragment indexing is tested without a
// GPU (test/kernels/sim/selftest.cu, case "mma").
//
// Fragment layouts (lane l, g = l / 4, t = l % 4; a register holds two b16 values, the lower first):
//   A (16 x 16, row-major), 4 registers: a[r] = A[g + 8 (r % 2)][2t + 8 (r / 2) + {0, 1}]
//   B (16 x 8, k x n, "col"), 2 registers: b[r] = B[2t + 8 r + {0, 1}][g]
//   C, D (16 x 8, fp32), 4 values: d[r] = D[g + 8 (r / 2)][2t + r % 2]
//   ldmatrix.x4: lanes 8j..8j+7 give the row addresses (16 bytes each) of matrix j; register j of
//   lane l gets row l / 4, columns 2t, 2t + 1 of matrix j (.trans: rows 2t, 2t + 1 of column l / 4).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.cuh"

namespace onestep_cuda {

#ifdef ONESTEP_CUDA_SIM

namespace mma_sim {

inline float lowHalf(uint32_t v, bool bf16) {
  const uint16_t h = (uint16_t)(v & 0xffffu);
  if (bf16) {
    const uint32_t f = (uint32_t)h << 16;
    float out;
    std::memcpy(&out, &f, 4);
    return out;
  }
  __half x;
  std::memcpy(&x, &h, 2);
  return __half2float(x);
}
inline float highHalf(uint32_t v, bool bf16) { return lowHalf(v >> 16, bf16); }

// The warp barrier of these exchanges: its own kind of warp call, so that a lane in an mma and a lane
// in another warp-synchronous call are reported as divergent.
inline void exchange() {
  asm volatile("" ::: "memory");
  ::cusim::warpOp(3, 0xffffffffu, 0, 0);
  asm volatile("" ::: "memory");
}

inline void mma(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16) {
  const int l = ::cusim::laneId(), g = l / 4, t = l % 4;
  static thread_local uint32_t regs[32][32][6];  // [warp][lane][a0..a3, b0, b1]
  const int w = (int)(::cusim::tcur->linear / 32);
  for (int r = 0; r < 4; ++r) regs[w][l][r] = a[r];
  regs[w][l][4] = b[0], regs[w][l][5] = b[1];
  exchange();
  // rows g and g + 8 of A: held by lanes 4g .. 4g + 3
  float A[2][16];
  for (int src = 0; src < 4; ++src)
    for (int r = 0; r < 4; ++r) {
      const uint32_t v = regs[w][4 * g + src][r];
      const int row = r % 2, col = 2 * src + 8 * (r / 2);
      A[row][col] = lowHalf(v, bf16);
      A[row][col + 1] = highHalf(v, bf16);
    }
  // columns 2t and 2t + 1 of B: held by lanes 4n .. 4n + 3
  float B[2][16];
  for (int j = 0; j < 2; ++j)
    for (int src = 0; src < 4; ++src)
      for (int r = 0; r < 2; ++r) {
        const uint32_t v = regs[w][4 * (2 * t + j) + src][4 + r];
        const int k = 2 * src + 8 * r;
        B[j][k] = lowHalf(v, bf16);
        B[j][k + 1] = highHalf(v, bf16);
      }
  exchange();  // every lane has read the scratch
  for (int r = 0; r < 4; ++r) {
    float acc = c[r];
    for (int k = 0; k < 16; ++k) acc += A[r / 2][k] * B[r % 2][k];
    d[r] = acc;
  }
}

inline void ldmatrix(uint32_t r[4], const void* row, bool trans) {
  const int l = ::cusim::laneId(), g = l / 4, t = l % 4;
  static thread_local const uint16_t* rows[32][32];  // [warp][lane]: each lane's row address
  const int w = (int)(::cusim::tcur->linear / 32);
  rows[w][l] = static_cast<const uint16_t*>(row);
  exchange();
  for (int j = 0; j < 4; ++j) {
    if (!trans) {
      const uint16_t* p = rows[w][8 * j + g];
      r[j] = (uint32_t)p[2 * t] | ((uint32_t)p[2 * t + 1] << 16);
    } else {
      const uint16_t* p0 = rows[w][8 * j + 2 * t];
      const uint16_t* p1 = rows[w][8 * j + 2 * t + 1];
      r[j] = (uint32_t)p0[g] | ((uint32_t)p1[g] << 16);
    }
  }
  exchange();
}

// cp.async as the hardware may run it, at its worst: the destination is overwritten at issue (with
// NaNs: a slot still being read by other warps, for want of a barrier, shows) and the copy lands only
// when a cpAsyncWait retires its group (reading before waiting shows too). Each CUDA thread keeps its
// copies in flight (the source's bytes are read at issue: global memory does not change during a
// kernel), by group.
struct PendingCopy {
  void* dst;
  unsigned char bytes[16];
  uint64_t group;
};
struct AsyncCopies {
  std::vector<PendingCopy> pending;
  uint64_t committed = 0;
  uint64_t block = 0;  // the run of the block they were issued in (copies a block left in flight are dropped)
};
inline AsyncCopies& asyncCopies() {
  static thread_local AsyncCopies perThread[1024];  // by thread of the block running on this OS thread
  AsyncCopies& c = perThread[::cusim::tcur->linear];
  if (c.block != ::cusim::tcur->serial) c = AsyncCopies{}, c.block = ::cusim::tcur->serial;
  return c;
}
inline void copyAsync(void* dst, const void* src) {
  AsyncCopies& c = asyncCopies();
  PendingCopy p{dst, {}, c.committed};
  std::memcpy(p.bytes, src, 16);
  c.pending.push_back(p);
  std::memset(dst, 0xff, 16);  // until it lands: NaNs, so that reading the slot early shows
}
inline void commit() { ++asyncCopies().committed; }
// lands every copy of the groups older than the n most recent committed ones
inline void wait(uint64_t n) {
  AsyncCopies& c = asyncCopies();
  std::vector<PendingCopy> still;
  for (const PendingCopy& p : c.pending) {
    if (p.group + n < c.committed) std::memcpy(p.dst, p.bytes, 16);
    else still.push_back(p);
  }
  c.pending.swap(still);
}

}  // namespace mma_sim

#endif

// d = a b + c on one m16n8k16 tile; T: __half or __nv_bfloat16 (the type packed in a and b)
template <class T>
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]) {
#ifdef ONESTEP_CUDA_SIM
  mma_sim::mma(d, a, b, c, std::is_same<T, __nv_bfloat16>::value);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same<T, __nv_bfloat16>::value)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"
                 : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
  __trap();  // sm_80+ only: callers' limits keep older GPUs off these kernels
#endif
}

// Four 8x8 b16 matrices from shared memory; `row`: this lane's row address (see above)
__device__ __forceinline__ void ldmatrixX4(uint32_t r[4], const void* row) {
#ifdef ONESTEP_CUDA_SIM
  mma_sim::ldmatrix(r, row, false);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned s = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
#else
  __trap();
#endif
}

__device__ __forceinline__ void ldmatrixX4Trans(uint32_t r[4], const void* row) {
#ifdef ONESTEP_CUDA_SIM
  mma_sim::ldmatrix(r, row, true);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  const unsigned s = (unsigned)__cvta_generic_to_shared(row);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
#else
  __trap();
#endif
}

// 16 bytes from global to shared memory, asynchronously (both 16-byte aligned); visible after
// cpAsyncWait<n> retires its group (and a barrier, for other threads)
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem) {
#ifdef ONESTEP_CUDA_SIM
  if (reinterpret_cast<uintptr_t>(smem) % 16 || reinterpret_cast<uintptr_t>(gmem) % 16) ::cusim::kernelError("cp.async: a pointer is not 16-byte aligned");
  mma_sim::copyAsync(smem, gmem);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
#else
  *static_cast<uint4*>(smem) = *static_cast<const uint4*>(gmem);
#endif
}

__device__ __forceinline__ void cpAsyncCommit() {
#ifdef ONESTEP_CUDA_SIM
  mma_sim::commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most n committed groups are still in flight.
template <int n>
__device__ __forceinline__ void cpAsyncWait() {
#ifdef ONESTEP_CUDA_SIM
  mma_sim::wait(n);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(n));
#endif
}

}  // namespace onestep_cuda
