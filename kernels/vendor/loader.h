// Finding and opening a vendor math library at run time (cuBLASLt, cuDNN): one search order for all
// of them (docs/CUDA.md, "Vendor libraries"), each candidate accepted or refused by the caller's
// check (its functions, its version, a handle), every refusal kept for info(). Host code only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace onestep_cuda {

struct VendorLibrary {
  void* dl = nullptr;  // the dlopen() handle of the accepted file (kept open for the process)
  std::string path;
  std::string reason;                // why none is used ("" when dl is set)
  std::vector<std::string> skipped;  // candidates that loaded but were refused: "path: why"
};

struct VendorSearch {
  const char* envVar;       // a file that replaces the search; "none" / "off" / "0" turns the library off
  std::string file;         // the versioned file name, e.g. libcublasLt.so.13
  std::vector<std::string> wheelDirs;  // under site-packages/nvidia/, e.g. "cu13/lib", "cublas/lib"
  // Resolves what the caller needs from an opened file: "" when usable, else why not (the file is
  // then closed and the search goes on).
  std::function<std::string(void* dl)> accept;
};

// ONESTEP_<LIB> first; then (not under cusim, where a real library cannot run on the simulated
// memory) CUDA_PATH, CUDA_HOME, /usr/local/cuda, /usr/local/cuda-* (lib64, targets/*-linux/lib),
// Python's NVIDIA wheels (VIRTUAL_ENV, CONDA_PREFIX, ~/.local, /usr/local/lib, /usr/lib), and the
// loader's own path.
VendorLibrary openVendorLibrary(const VendorSearch& search);

// A library's entry in the math_libraries report: {name, loaded, version, path, ops} or
// {name, loaded: false, reason}.
std::string libraryJson(const char* name, bool loaded, size_t version, const VendorLibrary& found, const char* ops);

// "major.minor.patch" of a version reported as major * 10000 + minor * 100 + patch (cuBLASLt, cuDNN 9).
std::string versionText(size_t v);

// Scratch carved out of a node's workspace starts on 256-byte boundaries (what cudaMalloc gives,
// and what the libraries' fastest algorithms assume).
constexpr uint64_t kScratchAlign = 256;
inline uint64_t scratchBytes(uint64_t n) { return (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

// A vendor library's choice (algorithm, workspace) per problem description, made once per process
// and shared by every graph and thread.
template <class Key, class Choice>
class ChoiceCache {
 public:
  bool find(const Key& k, Choice* out) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = map_.find(k);
    if (it == map_.end()) return false;
    *out = it->second;
    return true;
  }
  void put(const Key& k, const Choice& c) {
    std::lock_guard<std::mutex> lock(mutex_);
    map_[k] = c;
  }

 private:
  mutable std::mutex mutex_;
  std::map<Key, Choice> map_;
};

// The CUDA runtime major this library was built with (the vendor libraries must match it).
inline int runtimeMajor() { return CUDART_VERSION / 1000; }

}  // namespace onestep_cuda
