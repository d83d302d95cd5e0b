// Loads the CUDA backend library at run time (the pattern of ggml's loadable backends).
// Without the library, a driver or a device, the addon runs on the CPU and the status
// says exactly why.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../../kernels/onestep_cuda_api.h"

namespace onestep {

struct CudaDevice {
  int index = 0;
  std::string name;
  uint64_t totalMemory = 0;
  uint64_t freeMemory = 0;
  int ccMajor = 0;
  int ccMinor = 0;
  int multiprocessors = 0;
};

struct CudaStatus {
  bool attempted = false;
  std::string libraryPath;
  bool libraryLoaded = false;
  std::string buildInfo;
  bool usable = false;
  std::string reason;  // empty when usable
  std::string mathLibraries;  // JSON array: the vendor math libraries the library found (math_libraries)
  std::vector<CudaDevice> devices;
};

// Loads `libraryPath` (once per process; later calls return the first result) and probes it.
const CudaStatus& loadCudaBackend(const std::string& libraryPath);
// The table of a usable backend, or nullptr.
const onestep_cuda_api* cudaApi();

}  // namespace onestep
