// Registry of CPU kernels (every op has one).
#include "../core/error.h"
#include "../graph/kernels.h"
#include "ops.h"

namespace onestep {

namespace {
const Kernel kCpuKernels[] = {
#define ONESTEP_CPU_KERNEL_PTR(id, name) &cpu##id,
    ONESTEP_OP_TABLE(ONESTEP_CPU_KERNEL_PTR)
#undef ONESTEP_CPU_KERNEL_PTR
};
}  // namespace

Kernel cpuKernel(Op op) {
  check((int)op >= 0 && op < Op::Count, "ERR_ONESTEP_GRAPH", "no CPU kernel for op ", (int)op);
  return kCpuKernels[(int)op];
}

}  // namespace onestep
