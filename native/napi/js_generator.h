// JS side of the torch-compatible CPU generator (native/rng/torch_generator.*).
#pragma once

#include <napi.h>

namespace onestep {
namespace napi {

// Adds the generator's classes / functions to the addon's exports.
void RegisterGenerator(Napi::Env env, Napi::Object exports);

}  // namespace napi
}  // namespace onestep
