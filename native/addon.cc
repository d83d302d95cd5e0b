// Module entry of the onestep addon: registers the native classes and functions.
#include <napi.h>

#include "backend/cuda_loader.h"
#include "cpu/cpu_info.h"
#include "napi/addon_data.h"
#include "napi/js_generator.h"
#include "napi/js_graph.h"
#include "napi/js_lora.h"
#include "napi/js_mapped_file.h"
#include "napi/js_tensor.h"
#include "napi/util.h"

namespace onestep {
namespace napi {

namespace {

Napi::Value CpuInfoJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const CpuInfo& c = cpuInfo();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("threads", Napi::Number::New(info.Env(), c.threads));
    Napi::Array simd = Napi::Array::New(info.Env(), c.simd.size());
    for (size_t i = 0; i < c.simd.size(); ++i) simd.Set((uint32_t)i, c.simd[i]);
    o.Set("simd", simd);
    return o;
  });
}

// cudaStatus(libraryPath: string): loads the CUDA backend library once, probes it, reports.
Napi::Value CudaStatusJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "cudaStatus");
    const std::string path = stringArg(info, 0, "cudaStatus");
    const CudaStatus& s = loadCudaBackend(path);
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("libraryPath", s.libraryPath);
    o.Set("libraryLoaded", s.libraryLoaded);
    o.Set("buildInfo", s.buildInfo);
    o.Set("usable", s.usable);
    o.Set("reason", s.reason);
    o.Set("mathLibraries", s.mathLibraries.empty() ? "[]" : s.mathLibraries);
    Napi::Array devices = Napi::Array::New(env, s.devices.size());
    for (size_t i = 0; i < s.devices.size(); ++i) {
      const CudaDevice& d = s.devices[i];
      Napi::Object dj = Napi::Object::New(env);
      dj.Set("index", d.index);
      dj.Set("name", d.name);
      dj.Set("totalMemory", (double)d.totalMemory);
      dj.Set("freeMemory", (double)d.freeMemory);
      dj.Set("computeCapability", std::to_string(d.ccMajor) + "." + std::to_string(d.ccMinor));
      dj.Set("multiprocessors", d.multiprocessors);
      devices.Set((uint32_t)i, dj);
    }
    o.Set("devices", devices);
    return o;
  });
}

// cudaMemory(): { free, total } bytes of the GPU now (benchmarks; throws without CUDA).
Napi::Value CudaMemoryJs(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const onestep_cuda_api* api = cudaApi();
    check(api != nullptr, "ERR_ONESTEP_DEVICE", "CUDA is not usable: ", loadCudaBackend("").reason);
    uint64_t freeBytes = 0, total = 0;
    char err[256] = {0};
    check(api->mem_info(&freeBytes, &total, err, sizeof(err)) == 0, "ERR_ONESTEP_CUDA", err);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("free", (double)freeBytes);
    o.Set("total", (double)total);
    return o;
  });
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("Tensor", JsTensor::Define(env));
  exports.Set("MappedFile", JsMappedFile::Define(env));
  exports.Set("mapFile", Napi::Function::New(env, MapFile, "mapFile"));
  exports.Set("tensorFromFloat32", Napi::Function::New(env, TensorFromFloat32, "tensorFromFloat32"));
  exports.Set("tensorFromBytes", Napi::Function::New(env, TensorFromBytes, "tensorFromBytes"));
  exports.Set("randomTensor", Napi::Function::New(env, RandomTensor, "randomTensor"));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfoJs, "cpuInfo"));
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatusJs, "cudaStatus"));
  exports.Set("cudaMemory", Napi::Function::New(env, CudaMemoryJs, "cudaMemory"));
  exports.Set("cudaAbi", Napi::Number::New(env, ONESTEP_CUDA_ABI));
  exports.Set("Graph", JsGraph::Define(env));
  RegisterGenerator(env, exports);
  exports.Set("fuseLora", Napi::Function::New(env, FuseLora, "fuseLora"));
  exports.Set("deferLoraFusion", Napi::Function::New(env, DeferLoraFusion, "deferLoraFusion"));
  exports.Set("createGraph", Napi::Function::New(env, CreateGraph, "createGraph"));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema, "opSchema"));
  exports.Set("inferNode", Napi::Function::New(env, InferNode, "inferNode"));
  exports.Set("setWinogradPolicy", Napi::Function::New(env, SetWinogradPolicy, "setWinogradPolicy"));
  exports.Set("winogradPolicy", Napi::Function::New(env, GetWinogradPolicy, "winogradPolicy"));
  exports.Set("gemmInfo", Napi::Function::New(env, GemmInfo, "gemmInfo"));
  exports.Set("gemmSelect", Napi::Function::New(env, GemmSelect, "gemmSelect"));
  exports.Set("gemmSelectBf16", Napi::Function::New(env, GemmSelectBf16, "gemmSelectBf16"));
  exports.Set("gemmBench", Napi::Function::New(env, GemmBench, "gemmBench"));
  exports.Set("gemmPeak", Napi::Function::New(env, GemmPeak, "gemmPeak"));
  return exports;
}

}  // namespace
}  // namespace napi
}  // namespace onestep

static Napi::Object InitOnestep(Napi::Env env, Napi::Object exports) { return onestep::napi::Init(env, exports); }

NODE_API_MODULE(onestep, InitOnestep)
