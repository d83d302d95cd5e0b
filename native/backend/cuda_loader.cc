#include "cuda_loader.h"

#include <cstdlib>

#include "cuda_emulator.h"

#include <mutex>

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#include <sys/stat.h>
#endif

namespace onestep {

namespace {

std::mutex gMutex;
CudaStatus gStatus;
const onestep_cuda_api* gApi = nullptr;

bool fileExists(const std::string& path) {
#ifdef _WIN32
  const DWORD a = GetFileAttributesA(path.c_str());
  return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
#else
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
#endif
}

void* openLibrary(const std::string& path, std::string* error) {
#ifdef _WIN32
  HMODULE h = LoadLibraryA(path.c_str());
  if (!h) *error = "LoadLibrary failed with error " + std::to_string(GetLastError());
  return (void*)h;
#else
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    *error = e ? e : "dlopen failed";
  }
  return h;
#endif
}

void* findSymbol(void* lib, const char* name) {
#ifdef _WIN32
  return (void*)GetProcAddress((HMODULE)lib, name);
#else
  return dlsym(lib, name);
#endif
}

// The driver library the CUDA runtime needs; its absence is the commonest reason.
bool driverPresent() {
#ifdef _WIN32
  HMODULE h = LoadLibraryA("nvcuda.dll");
  if (h) FreeLibrary(h);
  return h != nullptr;
#else
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != nullptr;
#endif
}

}  // namespace

const CudaStatus& loadCudaBackend(const std::string& libraryPath) {
  std::lock_guard<std::mutex> lock(gMutex);
  if (gStatus.attempted) return gStatus;
  gStatus.attempted = true;
  gStatus.libraryPath = libraryPath;
  const char* emulate = std::getenv("ONESTEP_CUDA_EMULATE");
  if (emulate && std::string(emulate) == "1") {
    // tests of the CUDA path's host side without a GPU: the table runs on the CPU
    const onestep_cuda_api* api = emulatedCudaApi();
    gStatus.libraryPath = "(emulated)";
    gStatus.libraryLoaded = true;
    gStatus.buildInfo = api->build_info();
    onestep_cuda_device_info info;
    char err[64] = {0};
    api->device_info(0, &info, err, sizeof(err));
    gStatus.devices.push_back(CudaDevice{0, info.name, info.total_memory, info.free_memory, info.cc_major, info.cc_minor, info.multiprocessors});
    char msg[256] = {0};
    int count = 0;
    if (api->probe(&count, msg, sizeof(msg)) != 0) {
      gStatus.reason = msg;
      return gStatus;
    }
    gStatus.usable = true;
    gApi = api;
    return gStatus;
  }
  // ONESTEP_CUDA_EMULATE=kernels: the real kernels compiled for the CPU (kernels/sim, built by
  // scripts/build-cuda-sim.js) at ONESTEP_CUDA_LIBRARY; it needs no driver.
  const bool simulated = emulate && std::string(emulate) == "kernels";
  std::string path = libraryPath;
  if (simulated) {
    const char* lib = std::getenv("ONESTEP_CUDA_LIBRARY");
    path = lib ? lib : "";
    gStatus.libraryPath = path;
    if (path.empty()) {
      gStatus.reason = "ONESTEP_CUDA_EMULATE=kernels needs ONESTEP_CUDA_LIBRARY: the path of the simulated library";
      return gStatus;
    }
  }
  if (path.empty() || !fileExists(path)) {
    gStatus.reason = path.empty()
                         ? "the CUDA backend library was not built (no nvcc when the addon was built)"
                         : "the CUDA backend library is absent: " + path;
    return gStatus;
  }
  std::string err;
  void* lib = openLibrary(path, &err);
  if (!lib) {
    gStatus.reason = "the CUDA backend library failed to load: " + err;
    return gStatus;
  }
  gStatus.libraryLoaded = true;  // kept loaded for the life of the process
  auto getApi = reinterpret_cast<const onestep_cuda_api* (*)(int)>(findSymbol(lib, "onestep_cuda_get_api"));
  const onestep_cuda_api* api = getApi ? getApi(ONESTEP_CUDA_ABI) : nullptr;
  if (!api) {
    gStatus.reason = "the CUDA backend library does not match this addon (ABI " + std::to_string(ONESTEP_CUDA_ABI) +
                     "); rebuild both";
    return gStatus;
  }
  gStatus.buildInfo = api->build_info ? api->build_info() : "";
  if (!simulated && !driverPresent()) {
    gStatus.reason = "no NVIDIA driver: the driver library (libcuda.so.1 / nvcuda.dll) was not found";
    return gStatus;
  }
  char msg[512] = {0};
  int count = 0;
  const int rc = api->probe(&count, msg, sizeof(msg));
  std::string device0;  // why device 0 (the one graphs run on) cannot be described, if it cannot
  for (int i = 0; i < count; ++i) {
    onestep_cuda_device_info info;
    char derr[256] = {0};
    if (api->device_info(i, &info, derr, sizeof(derr)) != 0) {
      if (i == 0) device0 = derr[0] ? derr : "unknown error";
      continue;
    }
    CudaDevice d;
    d.index = i;
    d.name = info.name;
    d.totalMemory = info.total_memory;
    d.freeMemory = info.free_memory;
    d.ccMajor = info.cc_major;
    d.ccMinor = info.cc_minor;
    d.multiprocessors = info.multiprocessors;
    gStatus.devices.push_back(d);
  }
  if (rc != 0) {
    gStatus.reason = msg[0] ? msg : "the CUDA probe failed";
    return gStatus;
  }
  if (!device0.empty()) {  // its compute capability decides operand types and kernels: not usable without it
    gStatus.reason = "cannot read the properties of device 0: " + device0;
    return gStatus;
  }
  gStatus.usable = true;
  gStatus.mathLibraries = api->math_libraries ? api->math_libraries() : "[]";
  gApi = api;
  return gStatus;
}

const onestep_cuda_api* cudaApi() {
  std::lock_guard<std::mutex> lock(gMutex);
  return gApi;
}

}  // namespace onestep
