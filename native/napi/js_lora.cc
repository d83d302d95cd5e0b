#include "js_lora.h"

#include <cmath>

#include "../cpu/lora.h"
#include "js_tensor.h"
#include "util.h"

namespace onestep {
namespace napi {

namespace {

// The arguments both calls share: base, parts, name, dtype (default base's).
struct FuseArgs {
  Tensor base;
  std::vector<LoraPart> parts;
  std::string name;
  DType out;
};

FuseArgs fuseArgs(const Napi::CallbackInfo& info, const char* fn) {
  requireArgs(info, 3, fn);
  FuseArgs a;
  a.base = JsTensor::FromValue(info[0], "LoRA base");
  if (!info[1].IsArray()) fail("ERR_ONESTEP_ARGUMENT", fn, ": parts must be an array");
  a.name = stringArg(info, 2, fn);
  Napi::Array arr = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    if (!arr.Get(i).IsObject()) fail("ERR_ONESTEP_ARGUMENT", fn, ": parts[", i, "] must be an object");
    Napi::Object p = arr.Get(i).As<Napi::Object>();
    if (!p.Get("factor").IsNumber()) fail("ERR_ONESTEP_ARGUMENT", fn, ": parts[", i, "].factor must be a number");
    const double f = p.Get("factor").As<Napi::Number>().DoubleValue();
    if (!std::isfinite(f)) fail("ERR_ONESTEP_ARGUMENT", fn, ": parts[", i, "].factor must be finite");
    a.parts.push_back(LoraPart{JsTensor::FromValue(p.Get("down"), "LoRA down"), JsTensor::FromValue(p.Get("up"), "LoRA up"), (float)f});
  }
  a.out = a.base.dtype();
  if (info.Length() > 3 && !info[3].IsUndefined()) a.out = parseDType(stringArg(info, 3, fn));
  return a;
}

}  // namespace

Napi::Value FuseLora(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    FuseArgs a = fuseArgs(info, "fuseLora");
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      Tensor into = JsTensor::FromValue(info[4], "fuseLora: into");  // shares the memory
      fuseLora(a.base, a.parts, a.name, a.out, &into);
      return info[4];
    }
    return JsTensor::Wrap(info.Env(), fuseLora(a.base, a.parts, a.name, a.out));
  });
}

Napi::Value DeferLoraFusion(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    FuseArgs a = fuseArgs(info, "deferLoraFusion");
    Napi::Object result = Napi::Object::New(info.Env());
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      const Tensor into = JsTensor::FromValue(info[4], "deferLoraFusion: into");
      const DeferResult r = deferLoraFusion(a.base, a.parts, a.name, a.out, &into);
      result.Set("tensor", info[4]);
      result.Set("hostWasRead", r.hostWasRead);
      return result;
    }
    const DeferResult r = deferLoraFusion(a.base, a.parts, a.name, a.out);
    result.Set("tensor", JsTensor::Wrap(info.Env(), r.tensor));
    result.Set("hostWasRead", r.hostWasRead);
    return result;
  });
}

}  // namespace napi
}  // namespace onestep
