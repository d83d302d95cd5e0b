// fuseLora(base, [{ down, up, factor }], name, dtype?, into?) -> a new tensor: the LoRA deltas fused
// into base, in `dtype` (default: base's); with `into` (a writable tensor of that shape and dtype)
// the result is written there and `into` returned.
// deferLoraFusion(base, parts, name, dtype?, into?) -> { tensor, hostWasRead }: the same fusion,
// recorded on the tensor and made where it is read (native/cpu/lora.h): on the GPU when uploaded,
// on the host at its first host read; with `into` (an earlier deferred tensor) its definition is
// replaced and its GPU copies re-fused in place. hostWasRead: its host bytes had been made (graphs
// reading it on the CPU must be rebuilt).
#pragma once

#include <napi.h>

namespace onestep {
namespace napi {

Napi::Value FuseLora(const Napi::CallbackInfo& info);
Napi::Value DeferLoraFusion(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
