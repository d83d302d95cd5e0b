// What the CPU backend can use on this machine (runtime detection, not compile flags).
#pragma once

#include <string>
#include <vector>

namespace onestep {

struct CpuInfo {
  unsigned threads = 1;
  std::vector<std::string> simd;  // e.g. "avx2", "fma", "avx512f"
};

// Under ONESTEP_SIMD=avx2 the AVX-512 features (and AVX512_BF16, AMX) are left out, so every choice
// made from them takes what a CPU with AVX2 at most runs.
const CpuInfo& cpuInfo();
// Whether cpuInfo().simd lists `feature` (e.g. "avx2").
bool cpuHas(const char* feature);

// False under ONESTEP_SIMD=none: vector math and the Winograd transforms take their portable code
// whatever the CPU has (tests run those paths on any machine; the GEMM kernels have their own
// switches, ONESTEP_GEMM_KERNEL and ONESTEP_GEMM_BF16_KERNEL).
bool simdAllowed();

}  // namespace onestep
