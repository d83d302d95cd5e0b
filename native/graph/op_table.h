// The op table: its rows are in op_list.h (identifier, name, min inputs, max inputs, attribute
// count), shared with the CUDA library. lib/graph/ops.ts mirrors them row by row
// (test/graph/op_table.test.js checks they agree). A new op: one row in op_list.h, its shape rule
// in op_table.cc, a CPU kernel in native/cpu/ops_*.cc registered in native/cpu/cpu_ops.cc, a CUDA
// kernel in kernels/<family>.cu dispatched in kernels/dispatch.cu, a builder in lib/graph/ops.ts
// and a parity case.
//
// Inputs and attributes per op (activations are float32; "w" may be F32/F16/BF16; -1 = absent):
//   linear      x[...,K], w[N,K], bias[N]?, residual[...,N]?          act
//   conv2d      x[B,H,W,Ci], w[Co,kh,kw,Ci], bias[Co]?, residual?      stride_h, stride_w, pad_top, pad_left,
//                                                                      pad_bottom, pad_right, upsample, act
//   group_norm  x[B,...,C], gamma[C], beta[C]                          groups, eps, act
//   layer_norm  x[...,C], gamma[C], beta[C]                            eps
//   attention   q[B,Nq,H*D], k[B,Nk,H*D], v[B,Nk,H*Dv]                 heads, scale, causal
//   add, mul    a, b (b broadcast to a, dims right-aligned)            -
//   unary       x                                                      act, a, b, c, d, lo, hi:
//                                                                      y = clamp(c * act(a*x + b) + d, lo, hi)
//   geglu       x[...,2C]  -> x[..., :C] * gelu(x[..., C:])            -
//   concat      a[...,Ca], b[...,Cb] -> [..., Ca+Cb]                   -
//   upsample    x[B,H,W,C] -> [B,Ho,Wo,C] nearest (torch's index rule)  out_h, out_w
//   timestep_embedding  t[B]  -> [B,dim]                               dim, flip_sin_to_cos, shift, scale, form
//                       (form 0: diffusers get_timestep_embedding; 1: LCM get_guidance_scale_embedding order)
//   embedding   ids[...] (I64), table[V,C] -> [...,C]                  -
//   select_rows x[B,L,C], index[B] (I64) -> [B,C]                      -
//   permute     x                                                      rank, p0..p5
//   reshape     x (a view, no copy)                                    rank, d0..d5
//   slice       x                                                      axis, start, length
//   avg_pool    x[B,H,W,C], k x k windows with stride k (floor)        k
//   conv2d_winograd  x[B,H,W,Ci], u[16,Co,Ci] (F32, prepareWinogradWeight), bias[Co]?, residual?
//               a 3x3 stride-1 conv by Winograd F(2x2, 3x3)             pad_top, pad_left, pad_bottom, pad_right,
//                                                                      upsample, act
//   scheduler_step  x[B,...], out[B or 2B,...], coeffs[8], noise[B,...]?  -> [B,...]     select (0 prev, 1 denoised)
//               the fused sampler step: e = out, or with 2B (CFG [uncond; cond]) e = c6*out[:B] + c7*out[B:];
//               d = c0*x + c1*e; prev = c2*x + c3*e + c4*d + c5*noise
#pragma once

#include <cstdint>
#include <vector>

#include "../core/tensor.h"

#include "op_list.h"

namespace onestep {

enum class Op : int32_t {
#define ONESTEP_OP_ENUM(id, name, minIn, maxIn, nAttrs) id,
  ONESTEP_OP_TABLE(ONESTEP_OP_ENUM)
#undef ONESTEP_OP_ENUM
      Count
};

struct OpInfo {
  const char* name;
  int minInputs;
  int maxInputs;
  int attrCount;
};

const OpInfo& opInfo(Op op);
int opCount();

// What a node's input is, for shape inference.
struct ValueDesc {
  DType dtype;
  Shape shape;
};

// Checks dtypes, input shapes and attributes; returns the output shape (float32). Throws
// ERR_ONESTEP_GRAPH naming the op on any mismatch. Absent optional inputs are nullptr.
Shape inferShape(Op op, const std::vector<const ValueDesc*>& inputs, const std::vector<double>& attrs);

}  // namespace onestep
