// The rules of every op (native/graph/op_defs.h defines them): dtypes, shapes and cost, one
// function per op. Attribute kinds and ranges are checked generically from the definitions
// before a rule runs; a rule checks what depends on the inputs.
#include <cmath>
#include <string>

#include "../core/error.h"
#include "op_table.h"

namespace onestep {

namespace {

// ---- the table, generated from op_defs.h -------------------------------------------------------
#define ONESTEP_INPUT_DEF(field, req) {#field, (req) != 0},
#define ONESTEP_ATTR_DEF(kind, field, dflt, lo, hi) {#field, AttrKind::kind, (double)(dflt), (double)(lo), (double)(hi)},
#define ONESTEP_OP_DEFS(id, name)                                                      \
  const InputDef kInputs##id[] = {ONESTEP_IN_##id(ONESTEP_INPUT_DEF){nullptr, false}}; \
  const AttrDef kAttrs##id[] = {ONESTEP_AT_##id(ONESTEP_ATTR_DEF){nullptr, AttrKind::Int, 0, 0, 0}};
ONESTEP_OP_TABLE(ONESTEP_OP_DEFS)
#undef ONESTEP_OP_DEFS
#undef ONESTEP_ATTR_DEF
#undef ONESTEP_INPUT_DEF

constexpr int countRequired(const InputDef* d) {
  int n = 0;
  while (d[n].name && d[n].required) ++n;
  return n;
}
constexpr int countAll(const InputDef* d) {
  int n = 0;
  while (d[n].name) ++n;
  return n;
}

#define ONESTEP_INPUT_ONE(field, req) +1
#define ONESTEP_OP_INFO(id, name) \
  {name, countRequired(kInputs##id), 0 ONESTEP_IN_##id(ONESTEP_INPUT_ONE), id##Attrs::kCount, kInputs##id, kAttrs##id},
const OpInfo kOps[] = {ONESTEP_OP_TABLE(ONESTEP_OP_INFO)};
#undef ONESTEP_OP_INFO
#undef ONESTEP_INPUT_ONE

const char* const kActNames[] = {
#define ONESTEP_ACT_NAME(id, name) name,
    ONESTEP_ACT_TABLE(ONESTEP_ACT_NAME)
#undef ONESTEP_ACT_NAME
};

// ---- helpers for rules -------------------------------------------------------------------------
struct Ctx {
  const OpInfo& op;
  const std::vector<const ValueDesc*>& in;
  [[noreturn]] void bad(const std::string& msg) const { fail("ERR_ONESTEP_GRAPH", op.name, ": ", msg); }
  void require(bool c, const std::string& msg) const {
    if (!c) bad(msg);
  }
  bool has(int i) const { return i < (int)in.size() && in[i] != nullptr; }
  const Shape& shape(int i) const { return in[i]->shape; }
  DType dtype(int i) const { return in[i]->dtype; }
  const char* name(int i) const { return op.inputs[i].name; }
  void f32(int i) const {
    if (has(i)) require(dtype(i) == DType::F32, std::string(name(i)) + " must be F32, got " + dtypeName(dtype(i)));
  }
  void floatWeight(int i) const {
    const DType t = dtype(i);
    require(t == DType::F32 || t == DType::F16 || t == DType::BF16, std::string(name(i)) + " must be F32, F16 or BF16, got " + dtypeName(t));
  }
  void shapeIs(int i, const Shape& want) const {
    if (has(i)) require(shape(i) == want, std::string(name(i)) + " shape " + shapeString(shape(i)) + " must equal " + shapeString(want));
  }
};

double numelOf(const Shape& s) { return (double)shapeNumel(s); }

void checkAttrs(const OpInfo& op, const std::vector<double>& a) {
  if ((int)a.size() != op.attrCount)
    fail("ERR_ONESTEP_GRAPH", op.name, ": takes ", op.attrCount, " attributes, got ", a.size());
  for (int i = 0; i < op.attrCount; ++i) {
    const AttrDef& d = op.attrs[i];
    const double v = a[i];
    if (std::isnan(v)) fail("ERR_ONESTEP_GRAPH", op.name, ": attribute ", d.name, " must not be NaN");
    double lo = d.lo, hi = d.hi;
    switch (d.kind) {
      case AttrKind::Bound: continue;
      case AttrKind::Real:
        if (!std::isfinite(v)) fail("ERR_ONESTEP_GRAPH", op.name, ": attribute ", d.name, " must be finite, got ", v);
        continue;
      case AttrKind::Positive:
        if (!std::isfinite(v) || v <= 0) fail("ERR_ONESTEP_GRAPH", op.name, ": attribute ", d.name, " must be positive, got ", v);
        continue;
      case AttrKind::Bool: lo = 0, hi = 1; break;
      case AttrKind::ActFn: lo = 0, hi = kActCount - 1; break;
      case AttrKind::Int: break;
    }
    if (!(v == std::floor(v)) || v < lo || v > hi)
      fail("ERR_ONESTEP_GRAPH", op.name, ": attribute ", d.name, " must be an integer in [", (int64_t)lo, ", ", (int64_t)hi, "], got ", v);
  }
}

// Shared by linear and conv2d: bias [N] and residual shaped like the output.
void biasAndResidual(const Ctx& c, int64_t n, const Shape& out) {
  c.f32(2);
  c.shapeIs(2, Shape{n});
  c.f32(3);
  c.shapeIs(3, out);
}

// ---- one rule per op ---------------------------------------------------------------------------
#define ONESTEP_RULE_DECL(id, name) Shape rule##id(const Ctx& c, const id##Attrs& a, OpCost& cost);
ONESTEP_OP_TABLE(ONESTEP_RULE_DECL)
#undef ONESTEP_RULE_DECL

Shape ruleLinear(const Ctx& c, const LinearAttrs&, OpCost& cost) {
  c.f32(0);
  c.floatWeight(1);
  const Shape &x = c.shape(0), &w = c.shape(1);
  c.require(w.size() == 2, "w must be [N, K], got " + shapeString(w));
  c.require(!x.empty() && x.back() == w[1], "x " + shapeString(x) + " does not match w " + shapeString(w) + " (last dim must be K)");
  Shape out = x;
  out.back() = w[0];
  biasAndResidual(c, w[0], out);
  cost.linearMacs = numelOf(out) * (double)w[1];
  return out;
}

Shape ruleConv2d(const Ctx& c, const Conv2dAttrs& a, OpCost& cost) {
  c.f32(0);
  c.floatWeight(1);
  const Shape &x = c.shape(0), &w = c.shape(1);
  c.require(x.size() == 4, "x must be NHWC [B, H, W, C], got " + shapeString(x));
  c.require(w.size() == 4, "w must be [Co, Ci, kh, kw], got " + shapeString(w));
  c.require(w[1] == x[3], "x " + shapeString(x) + " does not match w " + shapeString(w) + " ([Co, Ci, kh, kw]): w expects " +
                              std::to_string(w[1]) + " input channels, x has " + std::to_string(x[3]));
  const int64_t hIn = x[1] * a.upsample + a.pad_top + a.pad_bottom, wIn = x[2] * a.upsample + a.pad_left + a.pad_right;
  c.require(hIn >= w[2] && wIn >= w[3], "kernel " + shapeString(w) + " larger than the padded input");
  Shape out{x[0], (hIn - w[2]) / a.stride_h + 1, (wIn - w[3]) / a.stride_w + 1, w[0]};
  biasAndResidual(c, w[0], out);
  cost.convMacs = numelOf(out) * (double)(w[1] * w[2] * w[3]);
  return out;
}

Shape ruleGroupNorm(const Ctx& c, const GroupNormAttrs& a, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require(x.size() >= 2, "x must be [B, ..., C], got " + shapeString(x));
  const int64_t C = x.back();
  c.require(C % a.groups == 0, std::to_string(C) + " channels are not divisible by " + std::to_string(a.groups) + " groups");
  for (int i = 1; i <= 2; ++i) {
    c.f32(i);
    c.shapeIs(i, Shape{C});
  }
  return x;
}

Shape ruleLayerNorm(const Ctx& c, const LayerNormAttrs&, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require(!x.empty(), "x must have a channel dimension");
  for (int i = 1; i <= 2; ++i) {
    c.f32(i);
    c.shapeIs(i, Shape{x.back()});
  }
  return x;
}

Shape ruleAttention(const Ctx& c, const AttentionAttrs& a, OpCost& cost) {
  for (int i = 0; i < 3; ++i) c.f32(i);
  const Shape &q = c.shape(0), &k = c.shape(1), &v = c.shape(2);
  c.require(q.size() == 3 && k.size() == 3 && v.size() == 3, "q, k, v must be [B, N, H*D]");
  c.require(q[0] == k[0] && k[0] == v[0], "q, k, v batch sizes differ");
  c.require(q[2] == k[2] && k[1] == v[1],
            "q " + shapeString(q) + ", k " + shapeString(k) + ", v " + shapeString(v) + " do not match");
  c.require(q[2] % a.heads == 0 && v[2] % a.heads == 0, "widths not divisible by " + std::to_string(a.heads) + " heads");
  c.require(k[1] > 0, "no keys");
  cost.attentionQKMacs = (double)q[0] * (double)q[1] * (double)k[1] * (double)q[2];
  cost.attentionPVMacs = (double)q[0] * (double)q[1] * (double)k[1] * (double)v[2];
  return Shape{q[0], q[1], v[2]};
}

Shape broadcastRule(const Ctx& c) {
  c.f32(0);
  c.f32(1);
  const Shape &x = c.shape(0), &y = c.shape(1);
  c.require(y.size() <= x.size(), "b " + shapeString(y) + " has more dims than a " + shapeString(x));
  for (size_t i = 0; i < y.size(); ++i) {
    const int64_t dy = y[y.size() - 1 - i], dx = x[x.size() - 1 - i];
    c.require(dy == dx || dy == 1, "b " + shapeString(y) + " does not broadcast to a " + shapeString(x));
  }
  return x;
}
Shape ruleAdd(const Ctx& c, const AddAttrs&, OpCost&) { return broadcastRule(c); }
Shape ruleMul(const Ctx& c, const MulAttrs&, OpCost&) { return broadcastRule(c); }

Shape ruleUnary(const Ctx& c, const UnaryAttrs& a, OpCost&) {
  c.f32(0);
  c.require(a.lo <= a.hi, "lo must not exceed hi");
  return c.shape(0);
}

Shape ruleGeglu(const Ctx& c, const GegluAttrs&, OpCost&) {
  c.f32(0);
  Shape out = c.shape(0);
  c.require(!out.empty() && out.back() % 2 == 0, "last dim must be even, got " + shapeString(out));
  out.back() /= 2;
  return out;
}

Shape ruleConcat(const Ctx& c, const ConcatAttrs&, OpCost&) {
  c.f32(0);
  c.f32(1);
  const Shape &x = c.shape(0), &y = c.shape(1);
  bool same = x.size() == y.size() && !x.empty();
  for (size_t i = 0; same && i + 1 < x.size(); ++i) same = x[i] == y[i];
  c.require(same, shapeString(x) + " and " + shapeString(y) + " differ outside the last dim");
  Shape out = x;
  out.back() += y.back();
  return out;
}

Shape ruleUpsample(const Ctx& c, const UpsampleAttrs& a, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require(x.size() == 4, "x must be NHWC, got " + shapeString(x));
  return Shape{x[0], a.out_h, a.out_w, x[3]};
}

Shape ruleTimestepEmbedding(const Ctx& c, const TimestepEmbeddingAttrs& a, OpCost&) {
  c.f32(0);
  c.require(c.shape(0).size() == 1, "t must be [B], got " + shapeString(c.shape(0)));
  c.require(a.dim % 2 == 0, "dim must be even");
  c.require((double)(a.dim / 2) - a.shift != 0, "dim / 2 - shift must not be zero");
  return Shape{c.shape(0)[0], a.dim};
}

Shape ruleEmbedding(const Ctx& c, const EmbeddingAttrs&, OpCost&) {
  c.require(c.dtype(0) == DType::I64, "ids must be I64");
  c.floatWeight(1);
  c.require(c.shape(1).size() == 2, "table must be [V, C], got " + shapeString(c.shape(1)));
  Shape out = c.shape(0);
  out.push_back(c.shape(1)[1]);
  return out;
}

Shape ruleSelectRows(const Ctx& c, const SelectRowsAttrs&, OpCost&) {
  c.f32(0);
  c.require(c.dtype(1) == DType::I64, "index must be I64");
  const Shape& x = c.shape(0);
  c.require(x.size() == 3, "x must be [B, L, C], got " + shapeString(x));
  c.shapeIs(1, Shape{x[0]});
  return Shape{x[0], x[2]};
}

Shape rulePermute(const Ctx& c, const PermuteAttrs& a, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require((int64_t)x.size() == a.rank, "permutation of rank " + std::to_string(a.rank) + " for x " + shapeString(x));
  Shape out;
  std::vector<bool> used(a.rank, false);
  for (int64_t i = 0; i < a.rank; ++i) {
    const int64_t p = permuteAxis(a, (int)i);
    c.require(p < a.rank, "axis " + std::to_string(p) + " outside rank " + std::to_string(a.rank));
    c.require(!used[p], "axes repeat");
    used[p] = true;
    out.push_back(x[p]);
  }
  return out;
}

Shape ruleReshape(const Ctx& c, const ReshapeAttrs& a, OpCost&) {
  c.f32(0);
  Shape out;
  for (int i = 0; i < a.rank; ++i) out.push_back(reshapeDim(a, i));
  c.require(shapeNumel(out) == shapeNumel(c.shape(0)), "cannot reshape " + shapeString(c.shape(0)) + " to " + shapeString(out));
  return out;
}

Shape ruleSlice(const Ctx& c, const SliceAttrs& a, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require(a.axis < (int64_t)x.size() && a.start + a.length <= x[a.axis],
            "[" + std::to_string(a.start) + ", " + std::to_string(a.start + a.length) + ") outside axis " + std::to_string(a.axis) +
                " of " + shapeString(x));
  Shape out = x;
  out[a.axis] = a.length;
  return out;
}

Shape ruleAvgPool(const Ctx& c, const AvgPoolAttrs& a, OpCost&) {
  c.f32(0);
  const Shape& x = c.shape(0);
  c.require(x.size() == 4, "x must be NHWC, got " + shapeString(x));
  c.require(x[1] >= a.k && x[2] >= a.k, "window larger than the input");
  return Shape{x[0], x[1] / a.k, x[2] / a.k, x[3]};
}

Shape ruleSchedulerStep(const Ctx& c, const SchedulerStepAttrs&, OpCost&) {
  for (int i = 0; i < 4; ++i) c.f32(i);
  const Shape &x = c.shape(0), &o = c.shape(1);
  c.require(!x.empty(), "x must have a batch dimension");
  Shape doubled = x;
  doubled[0] *= 2;
  c.require(o == x || o == doubled, "out " + shapeString(o) + " must be " + shapeString(x) + " or, with guidance, " + shapeString(doubled));
  c.shapeIs(2, Shape{8});
  c.shapeIs(3, x);
  return x;
}

}  // namespace

const OpInfo& opInfo(Op op) {
  const int i = (int)op;
  check(i >= 0 && i < (int)Op::Count, "ERR_ONESTEP_GRAPH", "unknown op code ", i);
  return kOps[i];
}

int opCount() { return (int)Op::Count; }

const char* actName(Act a) {
  const int i = (int)a;
  return i >= 0 && i < kActCount ? kActNames[i] : "?";
}

NodeInfo inferNode(Op op, const std::vector<const ValueDesc*>& in, const std::vector<double>& attrs) {
  const OpInfo& info = opInfo(op);
  const Ctx c{info, in};
  c.require((int)in.size() >= info.minInputs && (int)in.size() <= info.maxInputs,
            "takes " + std::to_string(info.minInputs) + ".." + std::to_string(info.maxInputs) + " inputs, got " + std::to_string(in.size()));
  for (int i = 0; i < info.minInputs; ++i) c.require(in[i] != nullptr, std::string("input ") + info.inputs[i].name + " is required");
  checkAttrs(info, attrs);
  NodeInfo r;
  switch (op) {
#define ONESTEP_RULE_CASE(id, name)                                     \
  case Op::id: r.shape = rule##id(c, id##Attrs::from(attrs.data()), r.cost); break;
    ONESTEP_OP_TABLE(ONESTEP_RULE_CASE)
#undef ONESTEP_RULE_CASE
    case Op::Count: c.bad("unknown op");
  }
  if (op != Op::Reshape) {  // a view moves nothing
    for (const ValueDesc* v : in)
      if (v) r.cost.bytes += numelOf(v->shape) * (double)dtypeSize(v->dtype);
    r.cost.bytes += numelOf(r.shape) * 4.0;
  }
  return r;
}

}  // namespace onestep
