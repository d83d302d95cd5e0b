// run_node: a node (validated by the addon's op rules, native/graph/op_rules.cc) to its op
// family's launcher. The entry point asserts, cheaply, the invariants of the C ABI every launcher
// relies on (op code, arities from op_defs.h, ranks, storage); the op's meaning is not re-checked.
#include "ops.cuh"

namespace onestep_cuda {

namespace {

struct Row {
  int minInputs, maxInputs, attrs;
};

#define ONESTEP_IN_REQ(field, req) +(req)
#define ONESTEP_IN_ONE(field, req) +1
const Row kRows[] = {
#define ONESTEP_OP_ROW(id, name) {0 ONESTEP_IN_##id(ONESTEP_IN_REQ), 0 ONESTEP_IN_##id(ONESTEP_IN_ONE), onestep::id##Attrs::kCount},
    ONESTEP_OP_TABLE(ONESTEP_OP_ROW)
#undef ONESTEP_OP_ROW
};
#undef ONESTEP_IN_REQ
#undef ONESTEP_IN_ONE

const char* const kNames[] = {
#define ONESTEP_OP_NAME(id, name) name,
    ONESTEP_OP_TABLE(ONESTEP_OP_NAME)
#undef ONESTEP_OP_NAME
};

Status checkNode(const onestep_cuda_node& n) {
  if (n.op < 0 || n.op >= ONESTEP_OP_COUNT) return Status::fail("unknown op code " + std::to_string(n.op));
  const Row& r = kRows[n.op];
  const std::string name = kNames[n.op];
  if (n.n_inputs < r.minInputs || n.n_inputs > r.maxInputs || n.n_inputs > ONESTEP_CUDA_MAX_INPUTS) return Status::fail(name + ": wrong number of inputs");
  if (n.n_attrs != r.attrs || n.n_attrs > ONESTEP_CUDA_MAX_ATTRS) return Status::fail(name + ": wrong number of attributes");
  for (int i = 0; i < n.n_inputs; ++i) {
    const onestep_cuda_tensor& t = n.inputs[i];
    if (t.rank < 0 || t.rank > ONESTEP_CUDA_MAX_RANK) return Status::fail(name + ": input " + std::to_string(i) + " has a bad rank");
    if (!t.data && i < r.minInputs && numel(t) > 0) return Status::fail(name + ": input " + std::to_string(i) + " has no data");
  }
  if (n.output.rank < 0 || n.output.rank > ONESTEP_CUDA_MAX_RANK || n.output.dtype != ONESTEP_CUDA_F32) return Status::fail(name + ": the output must be F32");
  if (!n.output.data && numel(n.output) > 0) return Status::fail(name + ": the output has no storage");
  return Status::ok();
}

}  // namespace

Status runNode(const onestep_cuda_node& n, cudaStream_t s) {
  Status st = checkNode(n);
  if (!st.good()) return st;
  switch (n.op) {
    case ONESTEP_OP_Linear: return launchLinear(n, s);
    case ONESTEP_OP_Conv2d: return launchConv2d(n, s);
    case ONESTEP_OP_GroupNorm: return launchGroupNorm(n, s);
    case ONESTEP_OP_LayerNorm: return launchLayerNorm(n, s);
    case ONESTEP_OP_Attention: return launchAttention(n, s);
    case ONESTEP_OP_Add: return launchAdd(n, s);
    case ONESTEP_OP_Mul: return launchMul(n, s);
    case ONESTEP_OP_Unary: return launchUnary(n, s);
    case ONESTEP_OP_Geglu: return launchGeglu(n, s);
    case ONESTEP_OP_Concat: return launchConcat(n, s);
    case ONESTEP_OP_Upsample: return launchUpsample(n, s);
    case ONESTEP_OP_TimestepEmbedding: return launchTimestepEmbedding(n, s);
    case ONESTEP_OP_Embedding: return launchEmbedding(n, s);
    case ONESTEP_OP_SelectRows: return launchSelectRows(n, s);
    case ONESTEP_OP_Permute: return launchPermute(n, s);
    case ONESTEP_OP_Reshape: return Status::ok();  // a view: the executor aliases the storage
    case ONESTEP_OP_Slice: return launchSlice(n, s);
    case ONESTEP_OP_AvgPool: return launchAvgPool(n, s);
    case ONESTEP_OP_SchedulerStep: return launchSchedulerStep(n, s);
    default: return Status::fail(std::string("no CUDA kernel for ") + kNames[n.op]);
  }
}

}  // namespace onestep_cuda
