// fuseLora(base, [{ down, up, factor }], name, dtype?, into?) -> a new tensor: the LoRA deltas fused
// into base, in `dtype` (default: base's); with `into` (a writable tensor of that shape and dtype)
// the result is written there and `into` returned.
#pragma once

#include <napi.h>

namespace onestep {
namespace napi {

Napi::Value FuseLora(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
