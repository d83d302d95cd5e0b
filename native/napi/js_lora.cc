#include "js_lora.h"

#include <cmath>

#include "../cpu/lora.h"
#include "js_tensor.h"
#include "util.h"

namespace onestep {
namespace napi {

Napi::Value FuseLora(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 3, "fuseLora");
    const Tensor& base = JsTensor::FromValue(info[0], "fuseLora: base");
    if (!info[1].IsArray()) fail("ERR_ONESTEP_ARGUMENT", "fuseLora: parts must be an array");
    const std::string name = stringArg(info, 2, "fuseLora");
    Napi::Array a = info[1].As<Napi::Array>();
    std::vector<LoraPart> parts;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      if (!a.Get(i).IsObject()) fail("ERR_ONESTEP_ARGUMENT", "fuseLora: parts[", i, "] must be an object");
      Napi::Object p = a.Get(i).As<Napi::Object>();
      if (!p.Get("factor").IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "fuseLora: parts[", i, "].factor must be a number");
      const double f = p.Get("factor").As<Napi::Number>().DoubleValue();
      if (!std::isfinite(f)) fail("ERR_ONESTEP_ARGUMENT", "fuseLora: parts[", i, "].factor must be finite");
      parts.push_back(LoraPart{JsTensor::FromValue(p.Get("down"), "fuseLora: down"), JsTensor::FromValue(p.Get("up"), "fuseLora: up"),
                               (float)f});
    }
    DType out = base.dtype();
    if (info.Length() > 3 && !info[3].IsUndefined()) out = parseDType(stringArg(info, 3, "fuseLora"));
    if (info.Length() > 4 && !info[4].IsUndefined()) {
      Tensor into = JsTensor::FromValue(info[4], "fuseLora: into");  // shares the memory
      fuseLora(base, parts, name, out, &into);
      return info[4];
    }
    return JsTensor::Wrap(info.Env(), fuseLora(base, parts, name, out));
  });
}

}  // namespace napi
}  // namespace onestep
