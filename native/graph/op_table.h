// The op table as C++ sees it: every op's definition (native/graph/op_defs.h: inputs, typed
// attributes) and its rules (op_rules.cc: dtypes, shapes, cost). The graph validates each node
// through inferNode once, when it is made; backends and kernels trust what it accepted.
// Where a new op goes: docs/ARCHITECTURE.md.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/tensor.h"

#include "op_defs.h"

namespace onestep {

enum class Op : int32_t {
#define ONESTEP_OP_ENUM(id, name) id,
  ONESTEP_OP_TABLE(ONESTEP_OP_ENUM)
#undef ONESTEP_OP_ENUM
      Count
};

enum class AttrKind : int32_t { Int, Bool, ActFn, Real, Bound, Positive };

struct AttrDef {
  const char* name;
  AttrKind kind;
  double dflt;  // NaN: required
  double lo, hi;  // Int: the allowed range
};

struct InputDef {
  const char* name;
  bool required;
};

struct OpInfo {
  const char* name;
  int minInputs;  // the required inputs (they come first)
  int maxInputs;
  int attrCount;
  const InputDef* inputs;  // maxInputs entries
  const AttrDef* attrs;    // attrCount entries
};

const OpInfo& opInfo(Op op);
int opCount();
const char* actName(Act a);

// What a node's input is, for inference.
struct ValueDesc {
  DType dtype;
  Shape shape;
};

// A node's arithmetic and memory traffic. Multiply-adds by the cost table's kinds (conv, linear,
// attention QK^T and PV); flops = 2 x their sum; bytes = what the node reads and writes.
struct OpCost {
  double convMacs = 0, linearMacs = 0, attentionQKMacs = 0, attentionPVMacs = 0;
  double bytes = 0;
  double macs() const { return convMacs + linearMacs + attentionQKMacs + attentionPVMacs; }
  double flops() const { return 2.0 * macs(); }
};

struct NodeInfo {
  Shape shape;  // the output's (always F32)
  OpCost cost;
};

// Checks the input count, dtypes and shapes and every attribute; returns the output shape and
// the cost. Throws ERR_ONESTEP_GRAPH naming the op and the offending input or attribute. Absent
// optional inputs are nullptr.
NodeInfo inferNode(Op op, const std::vector<const ValueDesc*>& inputs, const std::vector<double>& attrs);

}  // namespace onestep
