#include "op_table.h"

#include <cmath>
#include <string>

#include "../cpu/activation.h"
#include "../core/error.h"

namespace onestep {

namespace {

const OpInfo kOps[] = {
#define ONESTEP_OP_INFO(id, name, minIn, maxIn, nAttrs) {name, minIn, maxIn, nAttrs},
    ONESTEP_OP_TABLE(ONESTEP_OP_INFO)
#undef ONESTEP_OP_INFO
};

struct Ctx {
  const char* op;
  [[noreturn]] void bad(const std::string& msg) const { fail("ERR_ONESTEP_GRAPH", op, ": ", msg); }
  void require(bool c, const std::string& msg) const {
    if (!c) bad(msg);
  }
};

bool isFloatWeight(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void requireF32(const Ctx& c, const ValueDesc* v, const char* what) {
  c.require(v->dtype == DType::F32, std::string(what) + " must be F32, got " + dtypeName(v->dtype));
}

int64_t intAttr(const Ctx& c, double v, const char* what, int64_t lo, int64_t hi) {
  if (!(v == std::floor(v)) || v < (double)lo || v > (double)hi)
    c.bad(std::string("attribute ") + what + " must be an integer in [" + std::to_string(lo) + ", " +
          std::to_string(hi) + "], got " + std::to_string(v));
  return (int64_t)v;
}

void actAttr(const Ctx& c, double v) { intAttr(c, v, "act", 0, kActCount - 1); }

void sameShape(const Ctx& c, const Shape& a, const Shape& b, const char* what) {
  c.require(a == b, std::string(what) + " shape " + shapeString(b) + " must equal " + shapeString(a));
}

}  // namespace

const OpInfo& opInfo(Op op) {
  const int i = (int)op;
  check(i >= 0 && i < (int)Op::Count, "ERR_ONESTEP_GRAPH", "unknown op code ", i);
  return kOps[i];
}

int opCount() { return (int)Op::Count; }

Shape inferShape(Op op, const std::vector<const ValueDesc*>& in, const std::vector<double>& a) {
  const OpInfo& info = opInfo(op);
  const Ctx c{info.name};
  c.require((int)in.size() >= info.minInputs && (int)in.size() <= info.maxInputs,
            "takes " + std::to_string(info.minInputs) + ".." + std::to_string(info.maxInputs) + " inputs, got " +
                std::to_string(in.size()));
  for (int i = 0; i < info.minInputs; ++i) c.require(in[i] != nullptr, "input " + std::to_string(i) + " is required");
  c.require((int)a.size() == info.attrCount,
            "takes " + std::to_string(info.attrCount) + " attributes, got " + std::to_string(a.size()));
  for (double v : a) c.require(!std::isnan(v), "attributes must not be NaN");

  switch (op) {
    case Op::Linear: {
      const Shape& x = in[0]->shape;
      requireF32(c, in[0], "x");
      c.require(isFloatWeight(in[1]->dtype), "w must be F32, F16 or BF16");
      c.require(in[1]->shape.size() == 2, "w must be [N, K], got " + shapeString(in[1]->shape));
      c.require(!x.empty() && x.back() == in[1]->shape[1],
                "x " + shapeString(x) + " does not match w " + shapeString(in[1]->shape) + " (last dim must be K)");
      Shape out = x;
      out.back() = in[1]->shape[0];
      if (in.size() > 2 && in[2]) {
        requireF32(c, in[2], "bias");
        sameShape(c, Shape{in[1]->shape[0]}, in[2]->shape, "bias");
      }
      if (in.size() > 3 && in[3]) {
        requireF32(c, in[3], "residual");
        sameShape(c, out, in[3]->shape, "residual");
      }
      actAttr(c, a[0]);
      return out;
    }
    case Op::Conv2d: {
      const Shape& x = in[0]->shape;
      const Shape& w = in[1]->shape;
      requireF32(c, in[0], "x");
      c.require(isFloatWeight(in[1]->dtype), "w must be F32, F16 or BF16");
      c.require(x.size() == 4, "x must be NHWC [B, H, W, C], got " + shapeString(x));
      c.require(w.size() == 4, "w must be [Co, kh, kw, Ci], got " + shapeString(w));
      c.require(w[3] == x[3], "w " + shapeString(w) + " expects " + std::to_string(w[3]) + " input channels, x has " +
                                  std::to_string(x[3]));
      const int64_t sh = intAttr(c, a[0], "stride_h", 1, 64), sw = intAttr(c, a[1], "stride_w", 1, 64);
      const int64_t pt = intAttr(c, a[2], "pad_top", 0, 64), pl = intAttr(c, a[3], "pad_left", 0, 64);
      const int64_t pb = intAttr(c, a[4], "pad_bottom", 0, 64), pr = intAttr(c, a[5], "pad_right", 0, 64);
      const int64_t up = intAttr(c, a[6], "upsample", 1, 8);
      actAttr(c, a[7]);
      const int64_t hIn = x[1] * up + pt + pb, wIn = x[2] * up + pl + pr;
      c.require(hIn >= w[1] && wIn >= w[2], "kernel " + shapeString(w) + " larger than the padded input");
      Shape out{x[0], (hIn - w[1]) / sh + 1, (wIn - w[2]) / sw + 1, w[0]};
      if (in.size() > 2 && in[2]) {
        requireF32(c, in[2], "bias");
        sameShape(c, Shape{w[0]}, in[2]->shape, "bias");
      }
      if (in.size() > 3 && in[3]) {
        requireF32(c, in[3], "residual");
        sameShape(c, out, in[3]->shape, "residual");
      }
      return out;
    }
    case Op::GroupNorm: {
      const Shape& x = in[0]->shape;
      requireF32(c, in[0], "x");
      c.require(x.size() >= 2, "x must be [B, ..., C]");
      const int64_t C = x.back();
      const int64_t g = intAttr(c, a[0], "groups", 1, 1 << 20);
      c.require(C % g == 0, "channels " + std::to_string(C) + " not divisible by groups " + std::to_string(g));
      c.require(a[1] > 0, "eps must be positive");
      actAttr(c, a[2]);
      for (int i = 1; i <= 2; ++i) {
        requireF32(c, in[i], i == 1 ? "gamma" : "beta");
        sameShape(c, Shape{C}, in[i]->shape, i == 1 ? "gamma" : "beta");
      }
      return x;
    }
    case Op::LayerNorm: {
      const Shape& x = in[0]->shape;
      requireF32(c, in[0], "x");
      c.require(!x.empty(), "x must have a channel dimension");
      c.require(a[0] > 0, "eps must be positive");
      for (int i = 1; i <= 2; ++i) {
        requireF32(c, in[i], i == 1 ? "gamma" : "beta");
        sameShape(c, Shape{x.back()}, in[i]->shape, i == 1 ? "gamma" : "beta");
      }
      return x;
    }
    case Op::Attention: {
      for (int i = 0; i < 3; ++i) requireF32(c, in[i], i == 0 ? "q" : i == 1 ? "k" : "v");
      const Shape &q = in[0]->shape, &k = in[1]->shape, &v = in[2]->shape;
      c.require(q.size() == 3 && k.size() == 3 && v.size() == 3, "q, k, v must be [B, N, H*D]");
      const int64_t h = intAttr(c, a[0], "heads", 1, 4096);
      c.require(q[0] == k[0] && k[0] == v[0], "q, k, v batch sizes differ");
      c.require(k[1] == v[1], "k and v token counts differ");
      c.require(q[2] == k[2], "q and k widths differ");
      c.require(q[2] % h == 0 && v[2] % h == 0, "widths not divisible by heads");
      c.require(std::isfinite(a[1]), "scale must be finite");
      intAttr(c, a[2], "causal", 0, 1);
      c.require(k[1] > 0, "no keys");
      return Shape{q[0], q[1], v[2]};
    }
    case Op::Add:
    case Op::Mul: {
      requireF32(c, in[0], "a");
      requireF32(c, in[1], "b");
      const Shape &x = in[0]->shape, &y = in[1]->shape;
      c.require(y.size() <= x.size(), "b " + shapeString(y) + " has more dims than a " + shapeString(x));
      for (size_t i = 0; i < y.size(); ++i) {
        const int64_t dy = y[y.size() - 1 - i], dx = x[x.size() - 1 - i];
        c.require(dy == dx || dy == 1, "b " + shapeString(y) + " does not broadcast to a " + shapeString(x));
      }
      return x;
    }
    case Op::Unary: {
      requireF32(c, in[0], "x");
      actAttr(c, a[0]);
      for (int i = 1; i <= 4; ++i) c.require(std::isfinite(a[i]), "coefficients must be finite");
      c.require(a[5] <= a[6], "lo must not exceed hi");
      return in[0]->shape;
    }
    case Op::Geglu: {
      requireF32(c, in[0], "x");
      Shape out = in[0]->shape;
      c.require(!out.empty() && out.back() % 2 == 0, "last dim must be even, got " + shapeString(out));
      out.back() /= 2;
      return out;
    }
    case Op::Concat: {
      requireF32(c, in[0], "a");
      requireF32(c, in[1], "b");
      const Shape &x = in[0]->shape, &y = in[1]->shape;
      c.require(x.size() == y.size() && !x.empty(), "a and b ranks differ");
      for (size_t i = 0; i + 1 < x.size(); ++i)
        c.require(x[i] == y[i], "a " + shapeString(x) + " and b " + shapeString(y) + " differ outside the last dim");
      Shape out = x;
      out.back() += y.back();
      return out;
    }
    case Op::Upsample: {
      requireF32(c, in[0], "x");
      const Shape& x = in[0]->shape;
      c.require(x.size() == 4, "x must be NHWC");
      const int64_t oh = intAttr(c, a[0], "out_h", 1, 1 << 16), ow = intAttr(c, a[1], "out_w", 1, 1 << 16);
      return Shape{x[0], oh, ow, x[3]};
    }
    case Op::TimestepEmbedding: {
      requireF32(c, in[0], "t");
      c.require(in[0]->shape.size() == 1, "t must be [B], got " + shapeString(in[0]->shape));
      const int64_t dim = intAttr(c, a[0], "dim", 2, 1 << 20);
      c.require(dim % 2 == 0, "dim must be even");
      intAttr(c, a[1], "flip_sin_to_cos", 0, 1);
      c.require(std::isfinite(a[2]) && std::isfinite(a[3]), "shift and scale must be finite");
      c.require((double)(dim / 2) - a[2] != 0, "dim / 2 - shift must not be zero");
      intAttr(c, a[4], "form", 0, 1);
      return Shape{in[0]->shape[0], dim};
    }
    case Op::Embedding: {
      c.require(in[0]->dtype == DType::I64, "ids must be I64");
      c.require(isFloatWeight(in[1]->dtype), "table must be F32, F16 or BF16");
      c.require(in[1]->shape.size() == 2, "table must be [V, C]");
      Shape out = in[0]->shape;
      out.push_back(in[1]->shape[1]);
      return out;
    }
    case Op::SelectRows: {
      requireF32(c, in[0], "x");
      c.require(in[1]->dtype == DType::I64, "index must be I64");
      const Shape& x = in[0]->shape;
      c.require(x.size() == 3, "x must be [B, L, C]");
      sameShape(c, Shape{x[0]}, in[1]->shape, "index");
      return Shape{x[0], x[2]};
    }
    case Op::Permute: {
      requireF32(c, in[0], "x");
      const Shape& x = in[0]->shape;
      const int64_t rank = intAttr(c, a[0], "rank", 1, 6);
      c.require((int64_t)x.size() == rank, "rank attribute " + std::to_string(rank) + " differs from x " + shapeString(x));
      Shape out;
      std::vector<bool> used(rank, false);
      for (int64_t i = 0; i < rank; ++i) {
        const int64_t p = intAttr(c, a[1 + i], "axis", 0, rank - 1);
        c.require(!used[p], "axes repeat");
        used[p] = true;
        out.push_back(x[p]);
      }
      return out;
    }
    case Op::Reshape: {
      requireF32(c, in[0], "x");
      const int64_t rank = intAttr(c, a[0], "rank", 1, 6);
      Shape out;
      for (int64_t i = 0; i < rank; ++i) out.push_back(intAttr(c, a[1 + i], "dim", 0, (int64_t)1 << 50));
      c.require(shapeNumel(out) == shapeNumel(in[0]->shape),
                "cannot reshape " + shapeString(in[0]->shape) + " to " + shapeString(out));
      return out;
    }
    case Op::Slice: {
      requireF32(c, in[0], "x");
      const Shape& x = in[0]->shape;
      const int64_t axis = intAttr(c, a[0], "axis", 0, (int64_t)x.size() - 1);
      const int64_t start = intAttr(c, a[1], "start", 0, x[axis]);
      const int64_t len = intAttr(c, a[2], "length", 0, x[axis] - start);
      Shape out = x;
      out[axis] = len;
      return out;
    }
    case Op::AvgPool: {
      requireF32(c, in[0], "x");
      const Shape& x = in[0]->shape;
      c.require(x.size() == 4, "x must be NHWC");
      const int64_t k = intAttr(c, a[0], "k", 1, 64);
      c.require(x[1] >= k && x[2] >= k, "window larger than the input");
      return Shape{x[0], x[1] / k, x[2] / k, x[3]};
    }
    case Op::Conv2dWinograd: {
      const Shape& x = in[0]->shape;
      const Shape& u = in[1]->shape;
      requireF32(c, in[0], "x");
      requireF32(c, in[1], "u");
      c.require(x.size() == 4, "x must be NHWC [B, H, W, C], got " + shapeString(x));
      c.require(u.size() == 3 && u[0] == 16, "u must be [16, Co, Ci], got " + shapeString(u));
      c.require(u[2] == x[3], "u " + shapeString(u) + " expects " + std::to_string(u[2]) + " input channels, x has " +
                                  std::to_string(x[3]));
      const int64_t pt = intAttr(c, a[0], "pad_top", 0, 64), pl = intAttr(c, a[1], "pad_left", 0, 64);
      const int64_t pb = intAttr(c, a[2], "pad_bottom", 0, 64), pr = intAttr(c, a[3], "pad_right", 0, 64);
      const int64_t up = intAttr(c, a[4], "upsample", 1, 8);
      actAttr(c, a[5]);
      const int64_t hIn = x[1] * up + pt + pb, wIn = x[2] * up + pl + pr;
      c.require(hIn >= 3 && wIn >= 3, "a 3x3 kernel is larger than the padded input");
      Shape out{x[0], hIn - 2, wIn - 2, u[1]};
      if (in.size() > 2 && in[2]) {
        requireF32(c, in[2], "bias");
        sameShape(c, Shape{u[1]}, in[2]->shape, "bias");
      }
      if (in.size() > 3 && in[3]) {
        requireF32(c, in[3], "residual");
        sameShape(c, out, in[3]->shape, "residual");
      }
      return out;
    }
    case Op::SchedulerStep: {
      for (int i = 0; i < 3; ++i) requireF32(c, in[i], i == 0 ? "x" : i == 1 ? "out" : "coeffs");
      const Shape &x = in[0]->shape, &o = in[1]->shape;
      c.require(!x.empty(), "x must have a batch dimension");
      Shape doubled = x;
      doubled[0] *= 2;
      c.require(o == x || o == doubled, "out " + shapeString(o) + " must be " + shapeString(x) + " or, with guidance, " +
                                            shapeString(doubled));
      sameShape(c, Shape{8}, in[2]->shape, "coeffs");
      if (in.size() > 3 && in[3]) {
        requireF32(c, in[3], "noise");
        sameShape(c, x, in[3]->shape, "noise");
      }
      intAttr(c, a[0], "select", 0, 1);
      return x;
    }
    case Op::Count: break;
  }
  c.bad("unknown op");
}

}  // namespace onestep
