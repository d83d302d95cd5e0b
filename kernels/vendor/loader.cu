// The search for vendor math libraries (loader.h).
#include <dirent.h>
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "../common.cuh"
#include "loader.h"

namespace onestep_cuda {

namespace {

// Tries one file: true when the caller's check accepts it (out.dl set), else the reason is kept.
bool tryFile(VendorLibrary& out, const VendorSearch& search, const std::string& file, bool reportMissing) {
  void* dl = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    if (reportMissing) {
      const char* e = dlerror();
      out.skipped.push_back(e ? std::string(e) : file + ": dlopen failed");
    }
    return false;
  }
  const std::string why = search.accept(dl);
  if (!why.empty()) {
    out.skipped.push_back(file + ": " + why);
    dlclose(dl);
    return false;
  }
  out.dl = dl;
  out.path = file;
  return true;
}

void addWheelDirs(std::vector<std::string>& dirs, const std::string& lib, const VendorSearch& search) {
  DIR* d = opendir(lib.c_str());
  if (!d) return;
  std::vector<std::string> pythons;
  while (dirent* e = readdir(d))
    if (std::strncmp(e->d_name, "python3", 7) == 0) pythons.push_back(e->d_name);
  closedir(d);
  for (const std::string& py : pythons)
    for (const char* packages : {"site-packages", "dist-packages"})
      for (const std::string& sub : search.wheelDirs) dirs.push_back(lib + "/" + py + "/" + packages + "/nvidia/" + sub);
}

std::vector<std::string> candidateDirs(const VendorSearch& search) {
  std::vector<std::string> dirs;
  auto toolkit = [&](const std::string& root) {
    dirs.push_back(root + "/lib64");
    dirs.push_back(root + "/targets/x86_64-linux/lib");
    dirs.push_back(root + "/targets/sbsa-linux/lib");
  };
  if (const char* p = std::getenv("CUDA_PATH")) toolkit(p);
  if (const char* p = std::getenv("CUDA_HOME")) toolkit(p);
  toolkit("/usr/local/cuda");
  if (DIR* d = opendir("/usr/local")) {
    std::vector<std::string> versioned;
    while (dirent* e = readdir(d))
      if (std::strncmp(e->d_name, "cuda-", 5) == 0) versioned.push_back(std::string("/usr/local/") + e->d_name);
    closedir(d);
    for (const std::string& v : versioned) toolkit(v);
  }
  if (const char* p = std::getenv("VIRTUAL_ENV")) addWheelDirs(dirs, std::string(p) + "/lib", search);
  if (const char* p = std::getenv("CONDA_PREFIX")) addWheelDirs(dirs, std::string(p) + "/lib", search);
  if (const char* p = std::getenv("HOME")) addWheelDirs(dirs, std::string(p) + "/.local/lib", search);
  addWheelDirs(dirs, "/usr/local/lib", search);
  addWheelDirs(dirs, "/usr/lib", search);
  return dirs;
}

}  // namespace

VendorLibrary openVendorLibrary(const VendorSearch& search) {
  VendorLibrary out;
  const char* env = std::getenv(search.envVar);
  if (env && *env) {
    const std::string v = env;
    if (v == "none" || v == "off" || v == "0") {
      out.reason = std::string("turned off (") + search.envVar + "=" + v + ")";
      return out;
    }
    if (tryFile(out, search, v, true)) return out;
    out.reason = std::string(search.envVar) + "=" + v + " is not usable (" + (out.skipped.empty() ? "not found" : out.skipped.back()) + ")";
    return out;
  }
#ifdef ONESTEP_CUDA_SIM
  out.reason = std::string("not searched under cusim (") + search.envVar + " names the stand-in)";
  return out;
#else
  for (const std::string& dir : candidateDirs(search))
    if (tryFile(out, search, dir + "/" + search.file, false)) return out;
  if (tryFile(out, search, search.file, false)) return out;
  if (!out.skipped.empty()) {
    out.reason = "no usable " + search.file + " (" + out.skipped.back() + ")";
  } else {
    std::string wheels;
    for (const std::string& w : search.wheelDirs) wheels += (wheels.empty() ? "nvidia/" : ", nvidia/") + w;
    out.reason = search.file + " not found (searched CUDA_PATH, CUDA_HOME, /usr/local/cuda*, Python's " + wheels + ", the loader's path; " +
                 search.envVar + " names a file)";
  }
  return out;
#endif
}

namespace {

std::string jsonString(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if ((unsigned char)c < 0x20) o += ' ';
    else o += c;
  }
  return o + "\"";
}

}  // namespace

std::string versionText(size_t v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}

std::string libraryJson(const char* name, bool loaded, size_t version, const VendorLibrary& found, const char* ops) {
  std::string o = "{\"name\":" + jsonString(name) + ",\"loaded\":" + (loaded ? "true" : "false");
  if (loaded) o += ",\"version\":" + jsonString(versionText(version)) + ",\"path\":" + jsonString(found.path) + ",\"ops\":" + jsonString(ops);
  else o += ",\"reason\":" + jsonString(found.reason);
  return o + "}";
}

}  // namespace onestep_cuda
