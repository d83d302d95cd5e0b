#include "cpu_info.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace onestep {

bool simdAllowed() {
  static const bool allowed = [] {
    const char* e = std::getenv("ONESTEP_SIMD");
    return !(e && std::string(e) == "none");
  }();
  return allowed;
}

namespace {
// ONESTEP_SIMD=avx2: the CPU as one without AVX-512 (nor AVX512_BF16, AMX): what AVX2-only CPUs
// run, testable on any x86-64 that has AVX2
bool capAtAvx2() {
  const char* e = std::getenv("ONESTEP_SIMD");
  return e && std::string(e) == "avx2";
}

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
  const bool avx512 = __builtin_cpu_supports("avx512f") && !capAtAvx2();
  if (avx512) info.simd.push_back("avx512f");
  if (avx512 && __builtin_cpu_supports("avx512bw")) info.simd.push_back("avx512bw");
  if (avx512 && __builtin_cpu_supports("avx512vl")) info.simd.push_back("avx512vl");
  // bf16 (CPUID leaf 7: subleaf 1 EAX bit 5 AVX512_BF16; subleaf 0 EDX bits 22, 24 AMX-BF16,
  // AMX-TILE), only where the OS keeps the AVX-512 state (the AMX tile state is asked for at use)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (avx512) {
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5))) info.simd.push_back("avx512bf16");
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
      if (d & (1u << 22)) info.simd.push_back("amx_bf16");
      if (d & (1u << 24)) info.simd.push_back("amx_tile");
    }
  }
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

bool cpuHas(const char* feature) {
  const std::vector<std::string>& s = cpuInfo().simd;
  return std::find(s.begin(), s.end(), feature) != s.end();
}

}  // namespace onestep
