#include "cpu_info.h"

#include <thread>

namespace onestep {

namespace {
CpuInfo detect() {
  CpuInfo info;
  const unsigned hc = std::thread::hardware_concurrency();
  info.threads = hc ? hc : 1;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) info.simd.push_back("sse4.2");
  if (__builtin_cpu_supports("avx")) info.simd.push_back("avx");
  if (__builtin_cpu_supports("avx2")) info.simd.push_back("avx2");
  if (__builtin_cpu_supports("fma")) info.simd.push_back("fma");
  if (__builtin_cpu_supports("f16c")) info.simd.push_back("f16c");
  if (__builtin_cpu_supports("avx512f")) info.simd.push_back("avx512f");
  if (__builtin_cpu_supports("avx512bw")) info.simd.push_back("avx512bw");
  if (__builtin_cpu_supports("avx512vl")) info.simd.push_back("avx512vl");
#elif defined(__aarch64__)
  info.simd.push_back("neon");
#endif
  return info;
}
}  // namespace

const CpuInfo& cpuInfo() {
  static const CpuInfo info = detect();
  return info;
}

}  // namespace onestep
