#include "js_tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/image.h"
#include "../cpu/lora.h"
#include "addon_data.h"
#include "util.h"

namespace onestep {
namespace napi {

Napi::Function JsTensor::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Tensor",
                                 {
                                     InstanceAccessor<&JsTensor::Dtype>("dtype"),
                                     InstanceAccessor<&JsTensor::ShapeGetter>("shape"),
                                     InstanceAccessor<&JsTensor::Nbytes>("nbytes"),
                                     InstanceMethod<&JsTensor::ToFloat32>("toFloat32"),
                                     InstanceMethod<&JsTensor::Bytes>("bytes"),
                                     InstanceMethod<&JsTensor::ToRgb8>("toRgb8"),
                                     InstanceMethod<&JsTensor::Dispose>("dispose"),
                                 });
  addonData(env).tensorCtor = Napi::Persistent(f);
  return f;
}

Napi::Object JsTensor::Wrap(Napi::Env env, Tensor tensor) {
  Napi::Object obj = addonData(env).tensorCtor.New({constructToken(env)});
  JsTensor* self = Napi::ObjectWrap<JsTensor>::Unwrap(obj);
  self->tensor_ = std::move(tensor);
  if (self->tensor_.ownsMemory()) {
    self->reported_ = (int64_t)self->tensor_.nbytes();
    Napi::MemoryManagement::AdjustExternalMemory(env, self->reported_);
  }
  return obj;
}

const Tensor& JsTensor::FromValue(Napi::Value value, const char* what) {
  if (!value.IsObject() || !value.As<Napi::Object>().InstanceOf(addonData(value.Env()).tensorCtor.Value()))
    fail("ERR_ONESTEP_ARGUMENT", what, " must be a native Tensor");
  return Napi::ObjectWrap<JsTensor>::Unwrap(value.As<Napi::Object>())->live();
}

JsTensor::JsTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsTensor>(info) {
  if (!isConstructToken(info)) throwJs(info.Env(), "ERR_ONESTEP_ARGUMENT", "Tensor cannot be constructed from JS; use tensorFromFloat32 / tensorFromBytes");
}

JsTensor::~JsTensor() { release(); }

void JsTensor::release() {
  if (reported_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_);
    reported_ = 0;
  }
  tensor_ = Tensor();
}

const Tensor& JsTensor::live() const {
  if (disposed_) fail("ERR_ONESTEP_DISPOSED", "tensor was disposed");
  return tensor_;
}

Napi::Value JsTensor::Dtype(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), dtypeName(live().dtype())); });
}

Napi::Value JsTensor::ShapeGetter(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return shapeToJs(info.Env(), live().shape()); });
}

Napi::Value JsTensor::Nbytes(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)live().nbytes()); });
}

Napi::Value JsTensor::ToFloat32(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = live();
    ensureHostFused(t);  // a deferred LoRA fusion's bytes are made on first read
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)t.numel());
    t.copyToFloat32(out.Data());
    return out;
  });
}

Napi::Value JsTensor::Bytes(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = live();
    ensureHostFused(t);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), t.data(), t.nbytes());
  });
}

// toRgb8(batchIndex, unit?: Float32Array) -> Uint8Array: one image of a decoded [B, 3, H, W]
// tensor as RGB bytes (and its [0, 1] image into `unit`, 3 * H * W floats)
Napi::Value JsTensor::ToRgb8(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "toRgb8");
    check(info[0].IsNumber(), "ERR_ONESTEP_ARGUMENT", "toRgb8: the batch index must be a number");
    const Tensor& t = live();
    ensureHostFused(t);
    const size_t bytes = (size_t)rgb8Bytes(t);
    float* unit = nullptr;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      check(info[1].IsTypedArray() && info[1].As<Napi::TypedArray>().TypedArrayType() == napi_float32_array, "ERR_ONESTEP_ARGUMENT",
            "toRgb8: unit must be a Float32Array");
      Napi::Float32Array u = info[1].As<Napi::Float32Array>();
      check(u.ElementLength() == bytes, "ERR_ONESTEP_ARGUMENT", "toRgb8: unit holds ", u.ElementLength(), " floats, the image ", bytes);
      unit = u.Data();
    }
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), bytes);
    decodedToRgb8(t, info[0].As<Napi::Number>().Int64Value(), out.Data(), unit);
    return out;
  });
}

Napi::Value JsTensor::Dispose(const Napi::CallbackInfo& info) {
  release();
  disposed_ = true;
  pruneDeferredFusions();  // a freed deferred LoRA fusion lets go of the mappings it defines from
  return info.Env().Undefined();
}

Napi::Value TensorFromFloat32(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 3, "tensorFromFloat32");
    const DType dtype = parseDType(stringArg(info, 0, "tensorFromFloat32"));
    const Shape shape = shapeArg(info[1], "shape");
    if (!info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      fail("ERR_ONESTEP_ARGUMENT", "tensorFromFloat32: values must be a Float32Array");
    Napi::Float32Array values = info[2].As<Napi::Float32Array>();
    const int64_t n = shapeNumel(shape);
    check((int64_t)values.ElementLength() == n, "ERR_ONESTEP_SHAPE", "tensorFromFloat32: ", values.ElementLength(),
          " values for shape ", shapeString(shape), " (", n, " elements)");
    Tensor t = Tensor::empty(dtype, shape);
    t.copyFromFloat32(values.Data());
    return JsTensor::Wrap(info.Env(), std::move(t));
  });
}

Napi::Value TensorFromBytes(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 3, "tensorFromBytes");
    const DType dtype = parseDType(stringArg(info, 0, "tensorFromBytes"));
    const Shape shape = shapeArg(info[1], "shape");
    if (!info[2].IsTypedArray()) fail("ERR_ONESTEP_ARGUMENT", "tensorFromBytes: bytes must be a typed array");
    Napi::TypedArray bytes = info[2].As<Napi::TypedArray>();
    Tensor t = Tensor::empty(dtype, shape);
    check(bytes.ByteLength() == t.nbytes(), "ERR_ONESTEP_SHAPE", "tensorFromBytes: ", bytes.ByteLength(),
          " bytes for shape ", shapeString(shape), " of ", dtypeName(dtype), " (", t.nbytes(), " expected)");
    const uint8_t* src = static_cast<const uint8_t*>(bytes.ArrayBuffer().Data()) + bytes.ByteOffset();
    if (t.nbytes()) std::memcpy(t.mutableData(), src, t.nbytes());
    return JsTensor::Wrap(info.Env(), std::move(t));
  });
}

Napi::Value RandomTensor(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 5, "randomTensor");
    const DType dtype = parseDType(stringArg(info, 0, "randomTensor"));
    check(dtype != DType::I64, "ERR_ONESTEP_DTYPE", "randomTensor: float dtypes only");
    const Shape shape = shapeArg(info[1], "shape");
    const uint64_t seed = indexArg(info[2], "seed");
    if (!info[3].IsNumber() || !info[4].IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "randomTensor: mean and std must be numbers");
    const double mean = info[3].As<Napi::Number>().DoubleValue(), stdv = info[4].As<Napi::Number>().DoubleValue();
    check(std::isfinite(mean) && std::isfinite(stdv) && stdv >= 0, "ERR_ONESTEP_ARGUMENT", "randomTensor: bad mean or std");
    Tensor t = Tensor::empty(dtype, shape);
    const int64_t n = t.numel();
    const float half = (float)(stdv * 1.7320508075688772);  // uniform [-a, a] has std a / sqrt(3)
    constexpr int64_t kChunk = 1 << 16;
    std::vector<float> buf;
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t len = std::min(kChunk, n - c0);
      buf.resize((size_t)len);
      uint64_t x = seed * 0x9E3779B97F4A7C15ull + (uint64_t)(c0 / kChunk) * 0xD1B54A32D192ED03ull + 1;
      for (int64_t i = 0; i < len; ++i) {
        // splitmix64
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        const float u = (float)(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        buf[(size_t)i] = (float)mean + half * (2.0f * u - 1.0f);
      }
      Tensor part = Tensor::empty(dtype, Shape{len});
      part.copyFromFloat32(buf.data());
      std::memcpy(t.mutableData() + c0 * (int64_t)dtypeSize(dtype), part.data(), part.nbytes());
    }
    return JsTensor::Wrap(info.Env(), std::move(t));
  });
}

}  // namespace napi
}  // namespace onestep
