// linear and conv2d: both are GEMMs with a fused epilogue (bias, activation, residual).
#include "ops.h"

#include "../core/error.h"
#include "gemm.h"

namespace onestep {

namespace {
GemmEpilogue linearEpilogue(const GraphNode& node, const std::vector<TensorRef>& in, int64_t N) {
  GemmEpilogue ep;
  ep.bias = in.size() > 2 ? static_cast<const float*>(in[2].data) : nullptr;
  ep.act = node.attrsAs<LinearAttrs>().act;
  if (in.size() > 3 && in[3].data) {
    ep.residual = static_cast<const float*>(in[3].data);
    ep.ldr = N;
  }
  return ep;
}
}  // namespace

void cpuLinear(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& w = *in[1].shape;
  const int64_t N = w[0], K = w[1];
  const int64_t M = out.numel() / N;
  GemmB b;
  b.data = in[1].data;
  b.dtype = in[1].dtype;
  b.ld = K;
  b.nk = true;
  gemm(M, N, K, static_cast<const float*>(in[0].data), K, b, static_cast<float*>(out.data), N, linearEpilogue(node, in, N));
}

void cpuLinearPrepacked(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w) {
  GemmA a;
  a.data = static_cast<const float*>(in[0].data);
  a.ld = w.K;
  gemmPrepacked(out.numel() / w.N, a, w, static_cast<float*>(out.data), w.N, linearEpilogue(node, in, w.N));
}

namespace {
// A convolution as one GEMM: rows = output pixels (gathered from the NHWC input while packing, or
// the input itself for a pointwise conv), columns = output channels, depth = (ky, kx, ci).
struct ConvGemm {
  ConvGeom g;
  GemmA A;
  GemmEpilogue ep;
  int64_t M = 0, N = 0, K = 0;
};

void setUpConv(ConvGemm& c, const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, int64_t Co, int64_t kh, int64_t kw) {
  const Shape& x = *in[0].shape;
  const Shape& o = *out.shape;
  const auto a = node.attrsAs<Conv2dAttrs>();
  ConvGeom& g = c.g;
  g.x = static_cast<const float*>(in[0].data);
  g.B = x[0];
  g.H = x[1];
  g.W = x[2];
  g.C = x[3];
  g.kh = kh;
  g.kw = kw;
  g.sh = a.stride_h;
  g.sw = a.stride_w;
  g.pt = a.pad_top;
  g.pl = a.pad_left;
  g.up = a.upsample;
  g.Ho = o[1];
  g.Wo = o[2];
  c.N = Co;
  c.K = kh * kw * g.C;
  c.M = o[0] * o[1] * o[2];
  c.ep.bias = in.size() > 2 ? static_cast<const float*>(in[2].data) : nullptr;
  c.ep.act = a.act;
  if (in.size() > 3 && in[3].data) {
    c.ep.residual = static_cast<const float*>(in[3].data);
    c.ep.ldr = Co;
  }
  const bool pointwise = kh == 1 && kw == 1 && g.sh == 1 && g.sw == 1 && g.up == 1 && a.pad_top == 0 && a.pad_left == 0 &&
                         a.pad_bottom == 0 && a.pad_right == 0;
  if (pointwise) {
    c.A.data = g.x;
    c.A.ld = g.C;
  } else {
    c.A.conv = &c.g;
  }
}
}  // namespace

void cpuConv2d(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& w = *in[1].shape;  // [Co, kh, kw, Ci]: the CPU plan's relayout of the graph's [Co, Ci, kh, kw]
  ConvGemm c;
  setUpConv(c, node, in, out, w[0], w[1], w[2]);
  GemmB b;
  b.data = in[1].data;
  b.dtype = in[1].dtype;
  b.ld = c.K;
  b.nk = true;
  gemm(c.M, c.N, c.K, c.A, b, static_cast<float*>(out.data), c.N, c.ep);
}

void cpuConv2dNarrow(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& w = *in[1].shape;  // [Co, kh, kw, Ci] float32 (the CPU plan's derived form)
  check(in[1].dtype == DType::F32, "ERR_ONESTEP_INTERNAL", "conv2d (narrow): the kernel must be float32");
  ConvGemm c;
  setUpConv(c, node, in, out, w[0], w[1], w[2]);
  gemmNarrow(c.M, c.N, c.K, c.A, static_cast<const float*>(in[1].data), static_cast<float*>(out.data), c.ep);
}

void cpuConv2dPrepacked(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w, const Shape& kernel) {
  ConvGemm c;
  setUpConv(c, node, in, out, kernel[0], kernel[2], kernel[3]);
  gemmPrepacked(c.M, c.A, w, static_cast<float*>(out.data), c.N, c.ep);
}

}  // namespace onestep
