#include "js_mapped_file.h"

#include "../core/tensor.h"
#include "addon_data.h"
#include "js_tensor.h"
#include "util.h"

namespace onestep {
namespace napi {

Napi::Function JsMappedFile::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "MappedFile",
                                 {
                                     InstanceAccessor<&JsMappedFile::Size>("size"),
                                     InstanceAccessor<&JsMappedFile::Path>("path"),
                                     InstanceMethod<&JsMappedFile::TensorView>("tensor"),
                                     InstanceMethod<&JsMappedFile::ReadBytes>("readBytes"),
                                     InstanceMethod<&JsMappedFile::Close>("close"),
                                 });
  addonData(env).mappedFileCtor = Napi::Persistent(f);
  return f;
}

JsMappedFile::JsMappedFile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsMappedFile>(info) {
  if (!isConstructToken(info))
    throwJs(info.Env(), "ERR_ONESTEP_ARGUMENT", "MappedFile cannot be constructed from JS; use mapFile(path)");
}

const std::shared_ptr<MappedFile>& JsMappedFile::live() const {
  if (!file_) fail("ERR_ONESTEP_DISPOSED", "mapped file was closed");
  return file_;
}

Napi::Value JsMappedFile::Size(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), (double)live()->size()); });
}

Napi::Value JsMappedFile::Path(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), live()->path()); });
}

// tensor(name, dtype, shape, begin, end): a view of file bytes [begin, end).
Napi::Value JsMappedFile::TensorView(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 5, "MappedFile.tensor");
    const std::string name = stringArg(info, 0, "MappedFile.tensor");
    const std::string dtypeStr = stringArg(info, 1, "MappedFile.tensor");
    DType dtype;
    try {
      dtype = parseDType(dtypeStr);
    } catch (const Error& e) {
      fail(e.code().c_str(), "tensor '", name, "' in ", live()->path(), ": ", e.what());
    }
    const Shape shape = shapeArg(info[2], "shape");
    const uint64_t begin = indexArg(info[3], "begin");
    const uint64_t end = indexArg(info[4], "end");
    check(end >= begin, "ERR_ONESTEP_SAFETENSORS_RANGE", "tensor '", name, "' in ", live()->path(), ": end ", end,
          " precedes begin ", begin);
    Tensor t = Tensor::view(live(), begin, end - begin, dtype, shape, name);
    return JsTensor::Wrap(info.Env(), std::move(t));
  });
}

// readBytes(begin, end): a copy of file bytes [begin, end) (headers are small; data stays mapped).
Napi::Value JsMappedFile::ReadBytes(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 2, "MappedFile.readBytes");
    const uint64_t begin = indexArg(info[0], "begin");
    const uint64_t end = indexArg(info[1], "end");
    const auto& f = live();
    check(begin <= end && end <= f->size(), "ERR_ONESTEP_RANGE", "readBytes [", begin, ", ", end, ") outside ",
          f->path(), " (", f->size(), " bytes)");
    return Napi::Buffer<uint8_t>::Copy(info.Env(), f->data() + begin, (size_t)(end - begin));
  });
}

Napi::Value JsMappedFile::Close(const Napi::CallbackInfo& info) {
  file_.reset();  // views keep the mapping alive until they are released
  return info.Env().Undefined();
}

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "mapFile");
    const std::string path = stringArg(info, 0, "mapFile");
    auto file = MappedFile::open(path);
    Napi::Object obj = addonData(info.Env()).mappedFileCtor.New({constructToken(info.Env())});
    Napi::ObjectWrap<JsMappedFile>::Unwrap(obj)->file_ = std::move(file);
    return obj;
  });
}

}  // namespace napi
}  // namespace onestep
