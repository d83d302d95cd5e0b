// GemmKernel::fmaLoop written once over a vector type (simd_avx512.h, simd_avx2.h): `iters`
// rounds of N independent FMAs on registers (a micro-kernel's accumulator count), no memory
// operand: the CPU's FMA ceiling for that ISA. Returns the flops; the accumulators' sum goes to
// *sink. Included by each GEMM kernel file inside its ONESTEP_SIMD_BEGIN / END, after its vector
// type (internal linkage: each file's copy is compiled for its own ISA). V supplies vec, W, set1,
// fmadd, add, hsum.
#pragma once

#include <cstdint>

namespace onestep {
namespace {

template <typename V, int N>
double fmaLoopOf(int64_t iters, float* sink) {
  using vec = typename V::vec;
  vec acc[N];
  for (auto& v : acc) v = V::set1(0.5f);
  const vec m = V::set1(0.999f), a = V::set1(1e-3f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 32
    for (auto& v : acc) v = V::fmadd(v, m, a);
  }
  vec s = acc[0];
  for (int i = 1; i < N; ++i) s = V::add(s, acc[i]);
  *sink = V::hsum(s);
  return (double)iters * N * V::W * 2;
}

}  // namespace
}  // namespace onestep
