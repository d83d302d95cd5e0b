#include "cpu_backend.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.h"
#include "../graph/derived.h"
#include "lora.h"
#include "ops.h"
#include "winograd.h"

namespace onestep {

namespace {

std::atomic<int> gPolicy{[] {
  const char* e = std::getenv("ONESTEP_WINOGRAD");
  if (e && std::strcmp(e, "always") == 0) return (int)WinogradPolicy::Always;
  if (e && std::strcmp(e, "f4x4") == 0) return (int)WinogradPolicy::AlwaysF4;
  if (e && std::strcmp(e, "never") == 0) return (int)WinogradPolicy::Never;
  return (int)WinogradPolicy::Auto;
}()};

// The Winograd tile for a conv2d node: 0 (the direct kernel), 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3),
// float32 only)
int winogradTile(const GraphSpec& spec, const GraphNode& n) {
  const WinogradPolicy p = winogradPolicy();
  if (p == WinogradPolicy::Never) return 0;
  const Shape& x = spec.values[n.inputs[0]].shape;
  const Shape& w = spec.values[n.inputs[1]].shape;  // [Co, Ci, kh, kw]
  const auto a = n.attrsAs<Conv2dAttrs>();
  if (w[2] != 3 || w[3] != 3 || a.stride_h != 1 || a.stride_w != 1) return 0;
  const bool bf16 = spec.cpuGemmOperand == DType::BF16;
  if (p == WinogradPolicy::Always) return 2;
  if (p == WinogradPolicy::AlwaysF4) return bf16 ? 2 : 4;
  const int64_t pixels = x[1] * a.upsample * x[2] * a.upsample;
  if (w[0] < 32 || w[1] < 32 || pixels < 32 * 32) return 0;
  // from 32x32 pixels, in both precisions: at 16x16 the transforms cost more than the products
  // save (SD-Turbo's UNet step 12 % slower), at 32x32 the step is 6-7 % faster in float32 (AMD Zen
  // 4, 2 threads). The transformed weights take 16/9 of an F16 kernel as bf16 panels and 32/9 as
  // float32 ones (SD-Turbo's UNet +0.36 GiB in float32; docs/PERFORMANCE.md, "Memory").
  // From 64x64 pixels in float32, F(4x4, 3x3): 4x fewer multiplies instead of 2.25x, for 36
  // matrices (64/9 of an F16 kernel); bf16 operands keep F(2x2, 3x3), whose transforms amplify
  // their rounding less.
  return !bf16 && pixels >= 64 * 64 ? 4 : 2;
}

bool prepackEnabled() {
  static const bool enabled = [] {
    const char* e = std::getenv("ONESTEP_GEMM_PREPACK");
    return !(e && std::strcmp(e, "0") == 0);
  }();
  return enabled;
}

// A constant GEMM weight [N][K] packed once in the micro-kernel's layout (a derived form, shared by
// every graph using the weight), where the kernel reads that form (gemmPrepackDtype). A conv
// kernel [Co, Ci, kh, kw] (`relayout` given) is read as the [Co][kh * kw * Ci] matrix: a 1x1 one
// is that matrix already, a larger one is relaid out into `relayout`, a buffer the plan reuses for
// every kernel (one per kernel touched ~1 GB of fresh pages for SD-Turbo's UNet, page faults that
// dominate a first run on some virtual machines: docs/PERFORMANCE.md, "The first run").
bool prepack(CpuStep& s, const Tensor& src, int64_t N, int64_t K, const char* what, std::vector<uint8_t>* relayout) {
  const DType as = gemmPrepackDtype(src.dtype());
  auto pack = [&](const Tensor& t, auto&& into) {
    GemmB b;
    b.data = t.data();
    b.dtype = t.dtype();
    b.ld = K;
    b.nk = true;
    if (relayout && t.shape()[2] * t.shape()[3] > 1) {
      if (relayout->size() < t.nbytes()) relayout->resize(t.nbytes());
      relayoutConvKernelInto(t.data(), t.dtype(), t.shape(), relayout->data());
      b.data = relayout->data();
    }
    into(b);
    t.releaseMappedPages();  // the checkpoint's layout is not read again by this form
  };
  if (s.bf16) {
    // bf16 panels (every bf16 kernel's layout): prepacked whatever the switch says, the weights'
    // float32 form is never made
    const std::string form = std::string("gemm_prepacked_bf16_") + what;
    s.replaced[1] = derivedConstant(src, form.c_str(), [&](const Tensor& t) {
      Tensor out = Tensor::uninitialized(DType::BF16, Shape{(int64_t)gemmPrepackBf16Elems(K, N)});
      pack(t, [&](const GemmB& b) { gemmPrepackBf16(b, K, N, reinterpret_cast<uint16_t*>(out.mutableData())); });
      return out;
    });
    s.packedB = PrepackedB{s.replaced[1]->data(), DType::BF16, K, N, 0};
    return true;
  }
  if (!prepackEnabled() || as == DType::I64) return false;
  const int kernel = gemmPrepackKernel();
  const std::string form = std::string("gemm_prepacked_") + what + "_" + std::to_string(kernel) + "_" + dtypeName(as);
  s.replaced[1] = derivedConstant(src, form.c_str(), [&](const Tensor& t) {
    Tensor out = Tensor::uninitialized(as, Shape{(int64_t)gemmPrepackElems(K, N)});
    pack(t, [&](const GemmB& b) { gemmPrepackB(b, K, N, as, out.mutableData()); });
    return out;
  });
  s.packedB = PrepackedB{s.replaced[1]->data(), as, K, N, kernel};
  return true;
}

CpuStep planLinear(const GraphSpec& spec, const GraphNode& n) {
  CpuStep s;
  s.bf16 = spec.cpuGemmOperand == DType::BF16;
  s.kernel = cpuKernel(n.op);
  s.algorithm = "gemm";
  const GraphValue& w = spec.values[n.inputs[1]];
  if (w.kind != ValueKind::Const) return s;
  s.replaced.resize(n.inputs.size());
  if (prepack(s, spec.consts[w.constIndex], w.shape[0], w.shape[1], "linear", nullptr)) s.algorithm = s.bf16 ? "gemm_bf16" : "gemm_prepacked";
  return s;
}

CpuStep planConv2d(const GraphSpec& spec, const GraphNode& n, std::vector<uint8_t>& relayout) {
  CpuStep s;
  s.bf16 = spec.cpuGemmOperand == DType::BF16;
  s.replaced.resize(n.inputs.size());
  const GraphValue& w = spec.values[n.inputs[1]];
  const bool constant = w.kind == ValueKind::Const;
  const Tensor* src = constant ? &spec.consts[w.constIndex] : nullptr;
  const int tile = constant ? winogradTile(spec, n) : 0;
  if (tile) {
    s.kernel = &cpuConv2d;  // (not called: run() takes cpuConv2dWinograd)
    s.winograd = true;
    s.algorithm = s.bf16 ? "winograd_bf16" : tile == 4 ? "winograd_f4x4" : "winograd";
    // the checkpoint's layout is not read again by this form: its mapped pages go back to the OS
    const bool bf16 = s.bf16;
    const int kernel = gemmPrepackKernel();
    const std::string form = bf16 ? std::string("winograd_f2x2_3x3_bf16")
                                  : "winograd_f" + std::to_string(tile) + "x" + std::to_string(tile) + "_3x3_packed_" + std::to_string(kernel);
    s.replaced[1] = derivedConstant(*src, form.c_str(), [bf16, tile](const Tensor& t) {
      Tensor u = bf16 ? winogradWeightBf16(t) : winogradWeightPrepacked(t, tile);
      t.releaseMappedPages();
      return u;
    });
    s.packedB = PrepackedB{s.replaced[1]->data(), bf16 ? DType::BF16 : DType::F32, w.shape[1], w.shape[0], bf16 ? 0 : kernel};
    return s;
  }
  if (constant && w.shape[0] <= kGemmNarrowMaxN && w.shape[1] >= 16 && gemmNarrowAvailable()) {
    // few output channels (a decoder's last conv, to RGB): the narrow GEMM, vectorized along the
    // input channels, on the kernel as float32 [Co, kh, kw, Ci] (a few KB) whatever the precision
    s.kernel = &cpuConv2dNarrow;
    s.algorithm = "narrow_gemm";
    s.replaced[1] = derivedConstant(*src, "conv_ohwi_f32", [](const Tensor& t) {
      Tensor r = relayoutConvKernel(t.data(), t.dtype(), t.shape());
      if (r.dtype() != DType::F32) {
        Tensor f = Tensor::uninitialized(DType::F32, r.shape());
        r.copyToFloat32(reinterpret_cast<float*>(f.mutableData()));
        r = f;
      }
      t.releaseMappedPages();
      return r;
    });
    return s;
  }
  const auto a = n.attrsAs<Conv2dAttrs>();
  const bool pointwise = w.shape[2] == 1 && w.shape[3] == 1 && a.stride_h == 1 && a.stride_w == 1 && a.upsample == 1 &&
                         a.pad_top == 0 && a.pad_left == 0 && a.pad_bottom == 0 && a.pad_right == 0;
  s.kernel = &cpuConv2d;
  s.algorithm = pointwise ? (s.bf16 && constant ? "gemm_1x1_bf16" : "gemm_1x1") : (s.bf16 && constant ? "implicit_gemm_bf16" : "implicit_gemm");
  if (!constant) s.relayoutWeight = true;
  else if (!prepack(s, *src, w.shape[0], w.shape[1] * w.shape[2] * w.shape[3], "conv", &relayout)) s.replaced[1] = convKernelOhwi(*src);
  return s;
}

}  // namespace

WinogradPolicy winogradPolicy() { return (WinogradPolicy)gPolicy.load(); }
void setWinogradPolicy(WinogradPolicy p) { gPolicy.store((int)p); }

CpuPlan::CpuPlan(const GraphSpec& spec, const std::vector<size_t>& nodes) : steps_(spec.nodes.size()) {
  // the host bytes of deferred LoRA fusions these nodes read (through views too) are made first
  std::vector<int32_t> producer(spec.values.size(), -1);
  for (size_t i = 0; i < spec.nodes.size(); ++i) producer[spec.nodes[i].output] = (int32_t)i;
  for (size_t i : nodes)
    for (int32_t id : spec.nodes[i].inputs) {
      while (id >= 0 && spec.values[id].kind == ValueKind::Node && spec.nodes[producer[id]].op == Op::Reshape) id = spec.nodes[producer[id]].inputs[0];
      if (id >= 0 && spec.values[id].kind == ValueKind::Const) ensureHostFused(spec.consts[spec.values[id].constIndex]);
    }
  std::vector<uint8_t> relayout;  // conv kernels relaid out for prepacking, one at a time
  for (size_t i : nodes) {
    const GraphNode& n = spec.nodes[i];
    if (n.op == Op::Conv2d) {
      steps_[i] = planConv2d(spec, n, relayout);
    } else if (n.op == Op::Linear) {
      steps_[i] = planLinear(spec, n);
    } else if (n.op == Op::Attention && spec.cpuGemmOperand == DType::BF16) {
      steps_[i].kernel = &cpuAttentionBf16;
      steps_[i].algorithm = "bf16";
    } else {
      steps_[i].kernel = cpuKernel(n.op);
    }
  }
}

void CpuPlan::run(size_t node, const GraphSpec& spec, std::vector<TensorRef>& in, const TensorRef& out) const {
  const CpuStep& s = steps_[node];
  for (size_t k = 0; k < s.replaced.size(); ++k)
    if (s.replaced[k]) in[k] = TensorRef{const_cast<uint8_t*>(s.replaced[k]->data()), s.replaced[k]->dtype(), &s.replaced[k]->shape()};
  if (s.winograd) return cpuConv2dWinograd(spec.nodes[node], in, out, s.packedB);
  if (s.packedB.data) {
    const GraphNode& n = spec.nodes[node];
    if (n.op == Op::Conv2d) cpuConv2dPrepacked(n, in, out, s.packedB, spec.values[n.inputs[1]].shape);
    else cpuLinearPrepacked(n, in, out, s.packedB);
    return;
  }
  if (s.relayoutWeight) {
    // a kernel computed by the graph: this run's values, relaid out (uncached: they change)
    Tensor t = relayoutConvKernel(in[1].data, in[1].dtype, *in[1].shape);
    in[1] = TensorRef{t.mutableData(), t.dtype(), &t.shape()};
    s.kernel(spec.nodes[node], in, out);
    return;
  }
  s.kernel(spec.nodes[node], in, out);
}

}  // namespace onestep
