#include "js_generator.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "../rng/torch_generator.h"
#include "addon_data.h"
#include "util.h"

namespace onestep {
namespace napi {

namespace {

using rng::NormalVariant;
using rng::TorchGenerator;

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 - 1

// A seed as torch reads it: a 64-bit pattern (negative values in two's complement).
uint64_t seedArg(Napi::Value v, const char* what) {
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > kMaxSafe)
      fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer with |seed| <= 2^53 - 1 (use a bigint for larger seeds), got ",
           d);
    return d < 0 ? (uint64_t)(int64_t)d : (uint64_t)d;
  }
  if (v.IsBigInt()) {
    Napi::BigInt b = v.As<Napi::BigInt>();
    const size_t count = b.WordCount();
    if (count > 1) fail("ERR_ONESTEP_ARGUMENT", what, " must fit in 64 bits ([-2^63, 2^64))");
    int sign = 0;
    size_t n = 1;
    uint64_t word = 0;
    b.ToWords(&sign, &n, &word);
    if (sign) {
      if (word > (1ULL << 63)) fail("ERR_ONESTEP_ARGUMENT", what, " must fit in 64 bits ([-2^63, 2^64))");
      return (uint64_t)0 - word;  // two's complement
    }
    return word;
  }
  fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer number or a bigint");
}

// An int64 value: a safe-integer number or a bigint in int64 range.
int64_t int64Arg(Napi::Value v, const char* what) {
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > kMaxSafe)
      fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer with |value| <= 2^53 - 1 (or a bigint), got ", d);
    return (int64_t)d;
  }
  if (v.IsBigInt()) {
    bool lossless = false;
    const int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) fail("ERR_ONESTEP_ARGUMENT", what, " must fit in int64");
    return x;
  }
  fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer number or a bigint");
}

size_t numelArg(Napi::Value v, const char* what) {
  if (!v.IsNumber()) fail("ERR_ONESTEP_ARGUMENT", what, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > (double)kGeneratorMaxNumel)
    fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer in [0, ", kGeneratorMaxNumel, "], got ", d);
  return (size_t)d;
}

enum class GenDType { F32, F16, F64 };

GenDType dtypeArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString())
    fail("ERR_ONESTEP_ARGUMENT", what, ": dtype must be 'F32', 'F16' or 'F64'");
  const std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s == "F32") return GenDType::F32;
  if (s == "F16") return GenDType::F16;
  if (s == "F64") return GenDType::F64;
  fail("ERR_ONESTEP_ARGUMENT", what, ": unknown dtype '", s, "' (expected 'F32', 'F16' or 'F64')");
}

NormalVariant variantArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsString())
    fail("ERR_ONESTEP_ARGUMENT", what, ": variant must be 'generic' or 'avx2'");
  const std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s == "generic") return NormalVariant::Generic;
  if (s == "avx2") return NormalVariant::Avx2;
  fail("ERR_ONESTEP_ARGUMENT", what, ": unknown variant '", s, "' (expected 'generic' or 'avx2')");
}

Napi::Float32Array halfToFloat32Array(Napi::Env env, const std::vector<uint16_t>& h) {
  Napi::Float32Array out = Napi::Float32Array::New(env, h.size());
  float* dst = out.Data();
  for (size_t i = 0; i < h.size(); ++i) dst[i] = halfToFloat(h[i]);
  return out;
}

class JsTorchGenerator : public Napi::ObjectWrap<JsTorchGenerator> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "TorchGenerator",
                                   {
                                       InstanceMethod<&JsTorchGenerator::ManualSeed>("manualSeed"),
                                       InstanceMethod<&JsTorchGenerator::InitialSeed>("initialSeed"),
                                       InstanceMethod<&JsTorchGenerator::Randn>("randn"),
                                       InstanceMethod<&JsTorchGenerator::Rand>("rand"),
                                       InstanceMethod<&JsTorchGenerator::Randint>("randint"),
                                       InstanceMethod<&JsTorchGenerator::Random>("random"),
                                       InstanceMethod<&JsTorchGenerator::GetState>("getState"),
                                       InstanceMethod<&JsTorchGenerator::SetState>("setState"),
                                       InstanceAccessor<&JsTorchGenerator::HasCachedNormal>("hasCachedNormal"),
                                   });
    addonData(env).generatorCtor = Napi::Persistent(f);
    return f;
  }

  explicit JsTorchGenerator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsTorchGenerator>(info) {
    if (!isConstructToken(info))
      throwJs(info.Env(), "ERR_ONESTEP_ARGUMENT", "TorchGenerator cannot be constructed from JS; use createGenerator(seed)");
  }

  TorchGenerator gen;

 private:
  Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 1, "manualSeed");
      gen.manualSeed(seedArg(info[0], "seed"));
      return info.This();
    });
  }

  Napi::Value InitialSeed(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value { return Napi::BigInt::New(info.Env(), gen.initialSeed()); });
  }

  Napi::Value Randn(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 3, "randn");
      const size_t n = numelArg(info[0], "randn: numel");
      const GenDType dt = dtypeArg(info, 1, "randn");
      const NormalVariant variant = variantArg(info, 2, "randn");
      Napi::Env env = info.Env();
      switch (dt) {
        case GenDType::F32: {
          Napi::Float32Array out = Napi::Float32Array::New(env, n);
          gen.randnFloat(out.Data(), n, variant);
          return out;
        }
        case GenDType::F16: {
          std::vector<uint16_t> h(n);
          gen.randnHalf(h.data(), n);
          return halfToFloat32Array(env, h);
        }
        case GenDType::F64: {
          Napi::Float64Array out = Napi::Float64Array::New(env, n);
          gen.randnDouble(out.Data(), n);
          return out;
        }
      }
      fail("ERR_ONESTEP_INTERNAL", "randn: unhandled dtype");
    });
  }

  Napi::Value Rand(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 2, "rand");
      const size_t n = numelArg(info[0], "rand: numel");
      const GenDType dt = dtypeArg(info, 1, "rand");
      Napi::Env env = info.Env();
      switch (dt) {
        case GenDType::F32: {
          Napi::Float32Array out = Napi::Float32Array::New(env, n);
          gen.randFloat(out.Data(), n);
          return out;
        }
        case GenDType::F16: {
          std::vector<uint16_t> h(n);
          gen.randHalf(h.data(), n);
          return halfToFloat32Array(env, h);
        }
        case GenDType::F64: {
          Napi::Float64Array out = Napi::Float64Array::New(env, n);
          gen.randDouble(out.Data(), n);
          return out;
        }
      }
      fail("ERR_ONESTEP_INTERNAL", "rand: unhandled dtype");
    });
  }

  Napi::Value Randint(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 3, "randint");
      const int64_t low = int64Arg(info[0], "randint: low");
      const int64_t high = int64Arg(info[1], "randint: high");
      const size_t n = numelArg(info[2], "randint: numel");
      if (!(low < high)) fail("ERR_ONESTEP_ARGUMENT", "randint: low (", low, ") must be less than high (", high, ")");
      Napi::BigInt64Array out = Napi::BigInt64Array::New(info.Env(), n);
      gen.randint(low, high, out.Data(), n);
      return out;
    });
  }

  Napi::Value Random(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 1, "random");
      const size_t n = numelArg(info[0], "random: count");
      Napi::Uint32Array out = Napi::Uint32Array::New(info.Env(), n);
      uint32_t* dst = out.Data();
      for (size_t i = 0; i < n; ++i) dst[i] = gen.random();
      return out;
    });
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      const std::vector<uint8_t> s = gen.getState();
      Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), s.size());
      std::memcpy(out.Data(), s.data(), s.size());
      return out;
    });
  }

  Napi::Value SetState(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&]() -> Napi::Value {
      requireArgs(info, 1, "setState");
      if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
        fail("ERR_ONESTEP_ARGUMENT", "setState: state must be a Uint8Array (torch.Generator.get_state() bytes)");
      Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
      // copy first: the bytes are only read, but keep the engine update all-or-nothing
      std::vector<uint8_t> copy(bytes.ElementLength());
      if (!copy.empty()) std::memcpy(copy.data(), bytes.Data(), copy.size());
      gen.setState(copy.data(), copy.size());
      return info.This();
    });
  }

  Napi::Value HasCachedNormal(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), gen.hasCachedNormal());
  }
};

// createGenerator(seed) -> TorchGenerator
Napi::Value CreateGenerator(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "createGenerator");
    const uint64_t seed = seedArg(info[0], "seed");
    Napi::Object obj = addonData(info.Env()).generatorCtor.New({constructToken(info.Env())});
    Napi::ObjectWrap<JsTorchGenerator>::Unwrap(obj)->gen.manualSeed(seed);
    return obj;
  });
}

}  // namespace

void RegisterGenerator(Napi::Env env, Napi::Object exports) {
  JsTorchGenerator::Define(env);
  exports.Set("createGenerator", Napi::Function::New(env, CreateGenerator, "createGenerator"));
}

}  // namespace napi
}  // namespace onestep
