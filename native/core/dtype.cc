#include "dtype.h"

#include "error.h"

namespace onestep {

size_t dtypeSize(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I64: return 8;
  }
  fail("ERR_ONESTEP_DTYPE", "invalid dtype code ", (int)t);
}

const char* dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
  }
  return "?";
}

DType parseDType(const std::string& name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  if (name == "I64") return DType::I64;
  fail("ERR_ONESTEP_DTYPE", "unsupported dtype '", name, "' (supported: F32, F16, BF16, I64)");
}

}  // namespace onestep
