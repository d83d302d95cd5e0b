#include "js_tensor.h"

#include <cstring>

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
    Napi::Float32Array out = Napi::Float32Array::New(info.Env(), (size_t)t.numel());
    t.copyToFloat32(out.Data());
    return out;
  });
}

Napi::Value JsTensor::Bytes(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    const Tensor& t = live();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), t.data(), t.nbytes());
  });
}

Napi::Value JsTensor::Dispose(const Napi::CallbackInfo& info) {
  release();
  disposed_ = true;
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

}  // namespace napi
}  // namespace onestep
