#include "js_generator.h"

namespace onestep {
namespace napi {

void RegisterGenerator(Napi::Env, Napi::Object) {}

}  // namespace napi
}  // namespace onestep
