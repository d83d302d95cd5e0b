// JS class wrapping a native Tensor. Owned memory is reported to V8; dispose() frees early.
#pragma once

#include <napi.h>

#include "../core/tensor.h"

namespace onestep {
namespace napi {

class JsTensor : public Napi::ObjectWrap<JsTensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Wrap(Napi::Env env, Tensor tensor);
  // The tensor behind a JS value; throws a typed error if it is not a live JsTensor.
  static const Tensor& FromValue(Napi::Value value, const char* what);

  explicit JsTensor(const Napi::CallbackInfo& info);
  ~JsTensor() override;

 private:
  Napi::Value Dtype(const Napi::CallbackInfo& info);
  Napi::Value ShapeGetter(const Napi::CallbackInfo& info);
  Napi::Value Nbytes(const Napi::CallbackInfo& info);
  Napi::Value ToFloat32(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value ToRgb8(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  const Tensor& live() const;
  void release();

  Tensor tensor_;
  bool disposed_ = false;
  int64_t reported_ = 0;
};

// tensorFromFloat32(dtype: string, shape: number[], values: Float32Array) -> JsTensor
Napi::Value TensorFromFloat32(const Napi::CallbackInfo& info);
// tensorFromBytes(dtype: string, shape: number[], bytes: Uint8Array) -> JsTensor (raw little-endian)
Napi::Value TensorFromBytes(const Napi::CallbackInfo& info);
// randomTensor(dtype, shape, seed, mean, std) -> JsTensor: uniform values with that mean and standard
// deviation, deterministic in the seed (for random-weight models; not torch-compatible noise)
Napi::Value RandomTensor(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
