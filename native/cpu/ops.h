// CPU kernels of the ops in native/graph/op_table.h (one function per op).
#pragma once

#include <vector>

#include "../graph/graph.h"

namespace onestep {

#define ONESTEP_CPU_KERNEL_DECL(id, name) \
  void cpu##id(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out);
ONESTEP_OP_TABLE(ONESTEP_CPU_KERNEL_DECL)
#undef ONESTEP_CPU_KERNEL_DECL

}  // namespace onestep
