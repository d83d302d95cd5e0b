// JS class wrapping a read-only file mapping; tensor() makes zero-copy views into it.
#pragma once

#include <napi.h>

#include <memory>

#include "../core/mapped_file.h"

namespace onestep {
namespace napi {

class JsMappedFile : public Napi::ObjectWrap<JsMappedFile> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit JsMappedFile(const Napi::CallbackInfo& info);

 private:
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value TensorView(const Napi::CallbackInfo& info);
  Napi::Value ReadBytes(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  const std::shared_ptr<MappedFile>& live() const;
  friend Napi::Value MapFile(const Napi::CallbackInfo& info);

  std::shared_ptr<MappedFile> file_;
};

// mapFile(path: string) -> MappedFile
Napi::Value MapFile(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
