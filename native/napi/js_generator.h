// JS side of the torch-compatible CPU generator (native/rng/torch_generator.*).
//
//   createGenerator(seed: number | bigint) -> TorchGenerator (the class cannot be constructed from JS)
//   gen.manualSeed(seed)                      torch's manual_seed (low 32 bits seed the engine)
//   gen.initialSeed() -> bigint               the full 64-bit seed
//   gen.randn(numel, 'F32'|'F16'|'F64', 'generic'|'avx2') -> Float32Array (F32, F16) | Float64Array (F64)
//   gen.rand(numel, 'F32'|'F16'|'F64')        -> Float32Array (F32, F16) | Float64Array (F64)
//   gen.randint(low, high, numel) -> BigInt64Array   (low, high: safe-integer numbers or bigints)
//   gen.random(count) -> Uint32Array          raw engine outputs
//   gen.getState() -> Uint8Array (5056 bytes, torch.Generator.get_state()'s layout)
//   gen.setState(bytes: Uint8Array)           5056 or legacy 5048 bytes
//   gen.hasCachedNormal -> boolean            the < 16-element path holds a cached sample
// Seeds: an integer number with |seed| <= 2^53 - 1 or a bigint in [-2^63, 2^64); negative seeds are
// taken in two's complement, as torch does. Every bad argument throws code ERR_ONESTEP_ARGUMENT.
#pragma once

#include <napi.h>

#include <cstdint>

namespace onestep {
namespace napi {

// At most this many elements per call (1 GiB of float32).
constexpr uint64_t kGeneratorMaxNumel = 1ULL << 28;

// Adds the generator's classes / functions to the addon's exports.
void RegisterGenerator(Napi::Env env, Napi::Object exports);

}  // namespace napi
}  // namespace onestep
