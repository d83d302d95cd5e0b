// Element types the engine stores. Names follow the safetensors header spelling.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace onestep {

enum class DType : int { F32 = 0, F16 = 1, BF16 = 2, I64 = 3 };

size_t dtypeSize(DType t);
const char* dtypeName(DType t);
// Parses "F32" / "F16" / "BF16" / "I64"; throws ERR_ONESTEP_DTYPE otherwise.
DType parseDType(const std::string& name);

}  // namespace onestep
