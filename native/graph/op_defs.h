/* THE definition of every op: its code, name, inputs and typed attributes, in one place.
 * Preprocessor tables, so that C++ (the addon), CUDA (the backend library) and the TypeScript
 * schema (lib/graph/op_schema.ts, generated from the addon by scripts/gen-op-schema.js) all take
 * them from here. Shape, dtype and cost rules: op_rules.cc, one function per op.
 *
 *   ONESTEP_OP_TABLE(X)        X(Id, "name"): op codes in this order
 *   ONESTEP_IN_<Id>(I)         I(name, required): inputs in order; required ones come first
 *   ONESTEP_AT_<Id>(A)         A(Kind, name, default, lo, hi): attributes in order
 *
 * Attribute kinds (validated once, by the graph, when a node is made):
 *   Int       an integer in [lo, hi]
 *   Bool      0 or 1
 *   ActFn     an activation code (ONESTEP_ACT_TABLE)
 *   Real      a finite number
 *   Bound     any number but NaN (a clamp bound: -inf / +inf mean none)
 *   Positive  a finite number > 0
 * A default of ONESTEP_REQUIRED means the builder must give it. Every backend reads attributes
 * through the typed structs below (Conv2dAttrs::from(node attrs), ...), never by position.
 */
#ifndef ONESTEP_OP_DEFS_H
#define ONESTEP_OP_DEFS_H

/* defaults (only read by C++: the schema table) */
#define ONESTEP_REQUIRED (std::numeric_limits<double>::quiet_NaN())
#define ONESTEP_INF (std::numeric_limits<double>::infinity())
#define ONESTEP_BIG 1125899906842624.0 /* 2^50: dims, offsets */

/* Activations (the `act` attributes and the unary op): identifier, name. Code = position. */
#define ONESTEP_ACT_TABLE(X) \
  X(None, "none")            \
  X(Silu, "silu")            \
  X(Gelu, "gelu")           /* exact (erf), torch's default */ \
  X(GeluTanh, "gelu_tanh")  /* tanh approximation */          \
  X(QuickGelu, "quick_gelu") /* x * sigmoid(1.702 x), OpenAI CLIP */ \
  X(Relu, "relu")            \
  X(Tanh, "tanh")            \
  X(Sigmoid, "sigmoid")      \
  X(Exp, "exp")

#define ONESTEP_OP_TABLE(X)                   \
  X(Linear, "linear")                         \
  X(Conv2d, "conv2d")                         \
  X(GroupNorm, "group_norm")                  \
  X(LayerNorm, "layer_norm")                  \
  X(Attention, "attention")                   \
  X(Add, "add")                               \
  X(Mul, "mul")                               \
  X(Unary, "unary")                           \
  X(Geglu, "geglu")                           \
  X(Concat, "concat")                         \
  X(Upsample, "upsample")                     \
  X(TimestepEmbedding, "timestep_embedding")  \
  X(Embedding, "embedding")                   \
  X(SelectRows, "select_rows")                \
  X(Permute, "permute")                       \
  X(Reshape, "reshape")                       \
  X(Slice, "slice")                           \
  X(AvgPool, "avg_pool")                      \
  X(SchedulerStep, "scheduler_step")

/* linear: x[..., K] @ w[N, K]^T (+ bias[N]) -> act -> (+ residual[..., N]) */
#define ONESTEP_IN_Linear(I) I(x, 1) I(w, 1) I(bias, 0) I(residual, 0)
#define ONESTEP_AT_Linear(A) A(ActFn, act, 0, 0, 0)

/* conv2d: NHWC x[B, H, W, Ci], w[Co, Ci, kh, kw] as checkpoints store it (each backend makes its
 * own layout of it); the input nearest-upsampled by `upsample` first (fused), zero-padded, then
 * bias, act, residual as linear. How it is computed (implicit GEMM, Winograd, a library call) is
 * the backend's choice. */
#define ONESTEP_IN_Conv2d(I) I(x, 1) I(w, 1) I(bias, 0) I(residual, 0)
#define ONESTEP_AT_Conv2d(A)                                                                          \
  A(Int, stride_h, 1, 1, 64) A(Int, stride_w, 1, 1, 64) A(Int, pad_top, 0, 0, 64) A(Int, pad_left, 0, 0, 64) \
  A(Int, pad_bottom, 0, 0, 64) A(Int, pad_right, 0, 0, 64) A(Int, upsample, 1, 1, 8) A(ActFn, act, 0, 0, 0)

/* group_norm: x[B, ..., C] normalised over (spatial, C / groups) per group, then act */
#define ONESTEP_IN_GroupNorm(I) I(x, 1) I(gamma, 1) I(beta, 1)
#define ONESTEP_AT_GroupNorm(A) A(Int, groups, ONESTEP_REQUIRED, 1, 1048576) A(Positive, eps, ONESTEP_REQUIRED, 0, 0) A(ActFn, act, 0, 0, 0)

/* layer_norm: over the last dim */
#define ONESTEP_IN_LayerNorm(I) I(x, 1) I(gamma, 1) I(beta, 1)
#define ONESTEP_AT_LayerNorm(A) A(Positive, eps, ONESTEP_REQUIRED, 0, 0)

/* attention: q[B, Nq, H*D], k[B, Nk, H*D], v[B, Nk, H*Dv] -> [B, Nq, H*Dv], softmax(scale q k^T) v */
#define ONESTEP_IN_Attention(I) I(q, 1) I(k, 1) I(v, 1)
#define ONESTEP_AT_Attention(A) A(Int, heads, ONESTEP_REQUIRED, 1, 4096) A(Real, scale, ONESTEP_REQUIRED, 0, 0) A(Bool, causal, 0, 0, 1)

/* add, mul: b broadcast to a (dims right-aligned) */
#define ONESTEP_IN_Add(I) I(a, 1) I(b, 1)
#define ONESTEP_AT_Add(A)
#define ONESTEP_IN_Mul(I) I(a, 1) I(b, 1)
#define ONESTEP_AT_Mul(A)

/* unary: y = clamp(c * act(a * x + b) + d, lo, hi) */
#define ONESTEP_IN_Unary(I) I(x, 1)
#define ONESTEP_AT_Unary(A)                                                                            \
  A(ActFn, act, 0, 0, 0) A(Real, a, 1, 0, 0) A(Real, b, 0, 0, 0) A(Real, c, 1, 0, 0) A(Real, d, 0, 0, 0) \
  A(Bound, lo, (-ONESTEP_INF), 0, 0) A(Bound, hi, ONESTEP_INF, 0, 0)

/* geglu: x[..., 2C] -> x[..., :C] * gelu(x[..., C:]) */
#define ONESTEP_IN_Geglu(I) I(x, 1)
#define ONESTEP_AT_Geglu(A)

/* concat: a[..., Ca], b[..., Cb] -> [..., Ca + Cb] */
#define ONESTEP_IN_Concat(I) I(a, 1) I(b, 1)
#define ONESTEP_AT_Concat(A)

/* upsample: NHWC nearest resize to [B, out_h, out_w, C] (torch's index rule) */
#define ONESTEP_IN_Upsample(I) I(x, 1)
#define ONESTEP_AT_Upsample(A) A(Int, out_h, ONESTEP_REQUIRED, 1, 65536) A(Int, out_w, ONESTEP_REQUIRED, 1, 65536)

/* timestep_embedding: t[B] -> [B, dim]; form 0: diffusers get_timestep_embedding, form 1: LCM's
 * guidance-scale embedding order */
#define ONESTEP_IN_TimestepEmbedding(I) I(t, 1)
#define ONESTEP_AT_TimestepEmbedding(A)                                                                \
  A(Int, dim, ONESTEP_REQUIRED, 2, 1048576) A(Bool, flip_sin_to_cos, 0, 0, 1) A(Real, shift, 0, 0, 0) \
  A(Real, scale, 1, 0, 0) A(Int, form, 0, 0, 1)

/* embedding: ids[...] (I64), table[V, C] -> [..., C] */
#define ONESTEP_IN_Embedding(I) I(ids, 1) I(table, 1)
#define ONESTEP_AT_Embedding(A)

/* select_rows: x[B, L, C], index[B] (I64) -> [B, C] */
#define ONESTEP_IN_SelectRows(I) I(x, 1) I(index, 1)
#define ONESTEP_AT_SelectRows(A)

/* permute: output dim i is input dim axis<i> (rank dims used) */
#define ONESTEP_IN_Permute(I) I(x, 1)
#define ONESTEP_AT_Permute(A)                                                                             \
  A(Int, rank, ONESTEP_REQUIRED, 1, 6) A(Int, axis0, 0, 0, 5) A(Int, axis1, 0, 0, 5) A(Int, axis2, 0, 0, 5) \
  A(Int, axis3, 0, 0, 5) A(Int, axis4, 0, 0, 5) A(Int, axis5, 0, 0, 5)

/* reshape: a view of x as [dim0, ..., dim<rank-1>] (no copy) */
#define ONESTEP_IN_Reshape(I) I(x, 1)
#define ONESTEP_AT_Reshape(A)                                                                                \
  A(Int, rank, ONESTEP_REQUIRED, 1, 6) A(Int, dim0, 0, 0, ONESTEP_BIG) A(Int, dim1, 0, 0, ONESTEP_BIG)         \
  A(Int, dim2, 0, 0, ONESTEP_BIG) A(Int, dim3, 0, 0, ONESTEP_BIG) A(Int, dim4, 0, 0, ONESTEP_BIG) A(Int, dim5, 0, 0, ONESTEP_BIG)

/* slice: [start, start + length) of one axis */
#define ONESTEP_IN_Slice(I) I(x, 1)
#define ONESTEP_AT_Slice(A) A(Int, axis, ONESTEP_REQUIRED, 0, 7) A(Int, start, ONESTEP_REQUIRED, 0, ONESTEP_BIG) A(Int, length, ONESTEP_REQUIRED, 0, ONESTEP_BIG)

/* avg_pool: NHWC k x k windows with stride k (floor) */
#define ONESTEP_IN_AvgPool(I) I(x, 1)
#define ONESTEP_AT_AvgPool(A) A(Int, k, ONESTEP_REQUIRED, 1, 64)

/* scheduler_step: the fused sampler step. x[B, ...], out[B or 2B, ...], coeffs[8], noise[B, ...]?
 * e = out, or with 2B (guidance, [uncond; cond]) e = c6 * out[:B] + c7 * out[B:];
 * d = c0 x + c1 e; prev = c2 x + c3 e + c4 d + c5 noise; select 0: prev, 1: d (denoised) */
#define ONESTEP_IN_SchedulerStep(I) I(x, 1) I(out, 1) I(coeffs, 1) I(noise, 0)
#define ONESTEP_AT_SchedulerStep(A) A(Int, select, 0, 0, 1)

/* Op codes as plain integers, in table order. */
#define ONESTEP_OP_CODE_ENUM(id, name) ONESTEP_OP_##id,
enum onestep_op_code { ONESTEP_OP_TABLE(ONESTEP_OP_CODE_ENUM) ONESTEP_OP_COUNT };
#undef ONESTEP_OP_CODE_ENUM

#ifdef __cplusplus
#include <cstdint>
#include <limits>

namespace onestep {

enum class Act : int32_t {
#define ONESTEP_ACT_ENUM(id, name) id,
  ONESTEP_ACT_TABLE(ONESTEP_ACT_ENUM)
#undef ONESTEP_ACT_ENUM
};
#define ONESTEP_ACT_COUNT_ONE(id, name) +1
constexpr int32_t kActCount = 0 ONESTEP_ACT_TABLE(ONESTEP_ACT_COUNT_ONE);
#undef ONESTEP_ACT_COUNT_ONE

// Attribute C++ types by kind.
using AttrInt = int64_t;
using AttrBool = bool;
using AttrActFn = Act;
using AttrReal = double;
using AttrBound = double;
using AttrPositive = double;

// <Id>Attrs: the op's attributes as named, typed fields; from(a) reads a validated attribute
// array (the graph checked count, kinds and ranges when the node was made).
#define ONESTEP_ATTR_FIELD(kind, field, dflt, lo, hi) Attr##kind field;
#define ONESTEP_ATTR_READ(kind, field, dflt, lo, hi) r.field = takeAttr<Attr##kind>(a);
#define ONESTEP_ATTR_COUNT_ONE(kind, field, dflt, lo, hi) +1
template <typename T>
inline T takeAttr(const double*& p) {
  return static_cast<T>(*p++);
}
template <>
inline Act takeAttr<Act>(const double*& p) {
  return static_cast<Act>(static_cast<int32_t>(*p++));
}
#define ONESTEP_OP_ATTRS_STRUCT(id, name)                                  \
  struct id##Attrs {                                                       \
    ONESTEP_AT_##id(ONESTEP_ATTR_FIELD)                                    \
    static constexpr int kCount = 0 ONESTEP_AT_##id(ONESTEP_ATTR_COUNT_ONE); \
    static id##Attrs from(const double* a) {                               \
      id##Attrs r{};                                                       \
      ONESTEP_AT_##id(ONESTEP_ATTR_READ)(void) a;                          \
      return r;                                                            \
    }                                                                      \
  };
ONESTEP_OP_TABLE(ONESTEP_OP_ATTRS_STRUCT)
#undef ONESTEP_OP_ATTRS_STRUCT
#undef ONESTEP_ATTR_FIELD
#undef ONESTEP_ATTR_READ
#undef ONESTEP_ATTR_COUNT_ONE

// The list-valued attributes, by index.
inline int64_t permuteAxis(const PermuteAttrs& a, int i) {
  const int64_t v[6] = {a.axis0, a.axis1, a.axis2, a.axis3, a.axis4, a.axis5};
  return v[i];
}
inline int64_t reshapeDim(const ReshapeAttrs& a, int i) {
  const int64_t v[6] = {a.dim0, a.dim1, a.dim2, a.dim3, a.dim4, a.dim5};
  return v[i];
}

}  // namespace onestep
#endif

#endif
