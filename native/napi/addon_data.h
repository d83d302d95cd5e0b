// Per-environment state of the addon (each worker thread has its own): class constructors.
#pragma once

#include <napi.h>

namespace onestep {
namespace napi {

struct AddonData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference mappedFileCtor;
  Napi::FunctionReference graphCtor;
  Napi::FunctionReference generatorCtor;
};

inline AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Native code passes this token as the only constructor argument when it creates a wrapper,
// so `new Tensor()` from JS (an object without storage) is refused.
inline int* constructTokenAddress() {
  static int token = 0;
  return &token;
}
inline Napi::Value constructToken(Napi::Env env) { return Napi::External<int>::New(env, constructTokenAddress()); }
inline bool isConstructToken(const Napi::CallbackInfo& info) {
  return info.Length() == 1 && info[0].IsExternal() &&
         info[0].As<Napi::External<int>>().Data() == constructTokenAddress();
}

}  // namespace napi
}  // namespace onestep
