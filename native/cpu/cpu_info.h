// What the CPU backend can use on this machine (runtime detection, not compile flags).
#pragma once

#include <string>
#include <vector>

namespace onestep {

struct CpuInfo {
  unsigned threads = 1;
  std::vector<std::string> simd;  // e.g. "avx2", "fma", "avx512f"
};

const CpuInfo& cpuInfo();

}  // namespace onestep
