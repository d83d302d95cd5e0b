// Registry of CPU kernels (every op has one) and the FLOP count of each op for profiling.
#include "../core/error.h"
#include "../graph/kernels.h"
#include "ops.h"

namespace onestep {

namespace {
const Kernel kCpuKernels[] = {
#define ONESTEP_CPU_KERNEL_PTR(id, name, minIn, maxIn, nAttrs) &cpu##id,
    ONESTEP_OP_TABLE(ONESTEP_CPU_KERNEL_PTR)
#undef ONESTEP_CPU_KERNEL_PTR
};
}  // namespace

Kernel cpuKernel(Op op) {
  check((int)op >= 0 && op < Op::Count, "ERR_ONESTEP_GRAPH", "no CPU kernel for op ", (int)op);
  return kCpuKernels[(int)op];
}

double opFlops(Op op, const std::vector<const Shape*>& in, const Shape& out, const std::vector<double>& attrs) {
  (void)attrs;
  const double outN = (double)shapeNumel(out);
  switch (op) {
    case Op::Linear: return 2.0 * outN * (double)(*in[1])[1];
    case Op::Conv2d: {
      const Shape& w = *in[1];
      return 2.0 * outN * (double)(w[1] * w[2] * w[3]);
    }
    case Op::Conv2dWinograd: {
      // counted as the direct convolution it computes (the cost table's convention)
      return 2.0 * outN * 9.0 * (double)(*in[1])[2];
    }
    case Op::Attention: {
      const Shape &q = *in[0], &k = *in[1], &v = *in[2];
      return 2.0 * (double)q[0] * (double)q[1] * (double)k[1] * (double)(q[2] + v[2]);
    }
    default: return 0.0;
  }
}

}  // namespace onestep
