// run_node: a node (validated by the addon's op rules, native/graph/op_rules.cc) to its op
// family's launcher. The entry point asserts, cheaply, the invariants of the C ABI every launcher
// relies on (op code, arities from op_defs.h, ranks, storage); the op's meaning is not re-checked.
// supports_node: whether an op has a launcher here and its kernels take the node (their limits).
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

bool floatType(int d) { return d == ONESTEP_CUDA_F32 || d == ONESTEP_CUDA_F16 || d == ONESTEP_CUDA_BF16; }

// The ABI invariants: op code, arities, ranks, element types (a float output: F32, or 16-bit where
// the executor stores the value so; the kernels read and write each tensor as stored, ActIn /
// ActOut, and a family's limits refuse what it cannot take); with `data`, the storage too.
Status checkNode(const onestep_cuda_node& n, bool data) {
  if (n.op < 0 || n.op >= ONESTEP_OP_COUNT) return Status::fail("unknown op code " + std::to_string(n.op));
  const Row& r = kRows[n.op];
  const std::string name = kNames[n.op];
  if (n.n_inputs < r.minInputs || n.n_inputs > r.maxInputs || n.n_inputs > ONESTEP_CUDA_MAX_INPUTS) return Status::fail(name + ": wrong number of inputs");
  if (n.n_attrs != r.attrs || n.n_attrs > ONESTEP_CUDA_MAX_ATTRS) return Status::fail(name + ": wrong number of attributes");
  for (int i = 0; i < n.n_inputs; ++i) {
    const onestep_cuda_tensor& t = n.inputs[i];
    if (t.rank < 0 || t.rank > ONESTEP_CUDA_MAX_RANK) return Status::fail(name + ": input " + std::to_string(i) + " has a bad rank");
    if (!floatType(t.dtype) && t.dtype != ONESTEP_CUDA_I64) return Status::fail(name + ": input " + std::to_string(i) + " has an unknown element type");
    if (data && !t.data && i < r.minInputs && numel(t) > 0) return Status::fail(name + ": input " + std::to_string(i) + " has no data");
  }
  if (n.output.rank < 0 || n.output.rank > ONESTEP_CUDA_MAX_RANK || !floatType(n.output.dtype))
    return Status::fail(name + ": the output must be F32, F16 or BF16");
  if (data && !n.output.data && numel(n.output) > 0) return Status::fail(name + ": the output has no storage");
  return Status::ok();
}

Status viewNode(const onestep_cuda_node&, cudaStream_t) { return Status::ok(); }  // reshape: the executor aliases the storage

// Each op's launcher and, where its kernels cannot take every valid node, their limits. An op
// missing here has no CUDA kernel: the addon runs it on the CPU.
struct Route {
  int op;
  Status (*launch)(const onestep_cuda_node&, cudaStream_t);
  Status (*limits)(const onestep_cuda_node&);
  Status (*plan)(const onestep_cuda_node&, onestep_cuda_node_plan*);  // null: own kernels, no workspace
};
const Route kRoutes[] = {
    {ONESTEP_OP_Linear, launchLinear, linearLimits, planLinear},
    {ONESTEP_OP_Conv2d, launchConv2d, conv2dLimits, planConv2d},
    {ONESTEP_OP_GroupNorm, launchGroupNorm, groupNormLimits, planGroupNorm},
    {ONESTEP_OP_LayerNorm, launchLayerNorm, layerNormLimits},
    {ONESTEP_OP_Attention, launchAttention, attentionLimits, planAttention},
    {ONESTEP_OP_Add, launchAdd, nullptr},
    {ONESTEP_OP_Mul, launchMul, nullptr},
    {ONESTEP_OP_Unary, launchUnary, nullptr},
    {ONESTEP_OP_Geglu, launchGeglu, nullptr},
    {ONESTEP_OP_Concat, launchConcat, nullptr},
    {ONESTEP_OP_Upsample, launchUpsample, nullptr},
    {ONESTEP_OP_TimestepEmbedding, launchTimestepEmbedding, timestepEmbeddingLimits},
    {ONESTEP_OP_Embedding, launchEmbedding, nullptr},
    {ONESTEP_OP_SelectRows, launchSelectRows, nullptr},
    {ONESTEP_OP_Permute, launchPermute, nullptr},
    {ONESTEP_OP_Reshape, viewNode, nullptr},
    {ONESTEP_OP_Slice, launchSlice, nullptr},
    {ONESTEP_OP_AvgPool, launchAvgPool, nullptr},
    {ONESTEP_OP_SchedulerStep, launchSchedulerStep, schedulerStepLimits},
};

const Route* routeOf(int op) {
  for (const Route& r : kRoutes)
    if (r.op == op) return &r;
  return nullptr;
}

}  // namespace

Status supportsNode(const onestep_cuda_node& n) {
  Status st = checkNode(n, false);
  if (!st.good()) return st;
  const Route* r = routeOf(n.op);
  if (!r) return Status::fail(std::string("no CUDA kernel for ") + kNames[n.op]);
  return r->limits ? r->limits(n) : Status::ok();
}

Status planNode(const onestep_cuda_node& n, onestep_cuda_node_plan* out) {
  std::memset(out, 0, sizeof(*out));
  Status st = supportsNode(n);
  if (!st.good()) return st;
  const Route* r = routeOf(n.op);
  return r->plan ? r->plan(n, out) : Status::ok();
}

Status runNode(const onestep_cuda_node& n, cudaStream_t s) {
  Status st = checkNode(n, true);
  if (!st.good()) return st;
  const Route* r = routeOf(n.op);
  if (!r) return Status::fail(std::string("no CUDA kernel for ") + kNames[n.op]);
  if (n.algorithm != kAlgoOwn && !r->plan) return Status::fail(std::string(kNames[n.op]) + ": unknown algorithm " + std::to_string(n.algorithm));
  return r->launch(n, s);
}

}  // namespace onestep_cuda
