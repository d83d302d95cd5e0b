// Helpers shared by the N-API glue: C++ errors -> JS errors with `code`, argument checks.
#pragma once

#include <napi.h>

#include <cmath>
#include <new>
#include <string>

#include "../core/error.h"
#include "../core/tensor.h"

namespace onestep {
namespace napi {

[[noreturn]] inline void throwJs(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

// Runs `f`, converting every C++ exception into a JS exception. Nothing escapes as a crash.
template <typename F>
auto guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throwJs(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throwJs(env, "ERR_ONESTEP_OUT_OF_MEMORY", "out of host memory");
  } catch (const std::exception& e) {
    throwJs(env, "ERR_ONESTEP_INTERNAL", std::string("internal error: ") + e.what());
  }
}

inline void requireArgs(const Napi::CallbackInfo& info, size_t n, const char* what) {
  if (info.Length() < n) fail("ERR_ONESTEP_ARGUMENT", what, ": expected ", n, " arguments, got ", info.Length());
}

inline std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) fail("ERR_ONESTEP_ARGUMENT", what, ": argument ", i, " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

// A non-negative integer no larger than 2^53 - 1 (JS numbers are exact up to there).
inline uint64_t indexArg(Napi::Value v, const char* what) {
  if (!v.IsNumber()) fail("ERR_ONESTEP_ARGUMENT", what, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    fail("ERR_ONESTEP_ARGUMENT", what, " must be a non-negative integer, got ", d);
  return (uint64_t)d;
}

inline Shape shapeArg(Napi::Value v, const char* what) {
  if (!v.IsArray()) fail("ERR_ONESTEP_ARGUMENT", what, " must be an array of dimensions");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 16) fail("ERR_ONESTEP_SHAPE", what, " has ", a.Length(), " dimensions (at most 16)");
  Shape s;
  for (uint32_t i = 0; i < a.Length(); ++i) s.push_back((int64_t)indexArg(a.Get(i), what));
  shapeNumel(s);  // validates overflow
  return s;
}

inline Napi::Array shapeToJs(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t i = 0; i < s.size(); ++i) a.Set((uint32_t)i, Napi::Number::New(env, (double)s[i]));
  return a;
}

}  // namespace napi
}  // namespace onestep
