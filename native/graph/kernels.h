// The interface between the graph executor and a backend's op kernels.
#pragma once

#include <vector>

#include "graph.h"

namespace onestep {

// in[i].data is nullptr for an absent optional input. out has its arena storage.
using Kernel = void (*)(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out);

// The CPU kernel of each op, indexed by Op (never null: every op has a CPU twin).
Kernel cpuKernel(Op op);

}  // namespace onestep
