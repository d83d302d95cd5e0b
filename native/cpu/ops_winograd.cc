// conv2d by Winograd F(2x2, 3x3) or, in float32, F(4x4, 3x3), for 3x3 stride-1 convolutions (the
// CPU plan's choice, also of the variant). Tiles of 2x2 (4x4) outputs are
// processed in blocks: input transform into a per-thread buffer, 16 (36) GEMMs against the
// transformed weights (prepacked by the plan), output transform with the fused
// bias / activation / residual. 2.25x (4x) fewer multiplies than the direct convolution. With bf16
// operands (precision 'bf16') the transformed weights are bf16 panels made at plan time and the
// transformed input is rounded to bf16 as the GEMMs pack it; the transforms stay float32.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "thread_pool.h"
#include "winograd.h"
#include "../core/aligned.h"
#include "../core/error.h"

namespace onestep {

namespace {
thread_local ScratchBuffer tV, tM, tVb;
}  // namespace

void cpuConv2dWinograd(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, const PrepackedB& w) {
  const Shape& xs = *in[0].shape;
  const Shape& us = *in[1].shape;
  const Shape& os = *out.shape;
  const bool bf16 = w.dtype == DType::BF16;
  const int64_t B = xs[0], H = xs[1], W = xs[2], Ci = xs[3], Co = os[3];
  const int64_t stride = bf16 ? winogradBf16Stride(Co, Ci) : winogradF32Stride(Co, Ci, w.kernel);
  // the variant from the transformed kernel: 16 matrices F(2x2, 3x3), 36 F(4x4, 3x3) (float32 only)
  const int64_t nx = us.size() == 2 ? us[0] : 0;
  check(in[1].dtype == w.dtype && (w.dtype == DType::BF16 || w.dtype == DType::F32) && (nx == 16 || (nx == 36 && !bf16)) &&
            us[1] == stride,
        "ERR_ONESTEP_INTERNAL", "conv2d (Winograd): transformed kernel ", dtypeName(in[1].dtype), " ", shapeString(us),
        " does not fit ", Ci, " -> ", Co, " channels");
  const int64_t Ho = os[1], Wo = os[2];
  const auto a = node.attrsAs<Conv2dAttrs>();
  const int64_t pt = a.pad_top, pl = a.pad_left, up = a.upsample;
  const Act act = a.act;
  const int64_t Hu = H * up, Wu = W * up;
  const float* x = static_cast<const float*>(in[0].data);
  const float* bias = in.size() > 2 ? static_cast<const float*>(in[2].data) : nullptr;
  const float* residual = in.size() > 3 ? static_cast<const float*>(in[3].data) : nullptr;
  float* y = static_cast<float*>(out.data);
  ThreadPool& pool = ThreadPool::global();
  const WinogradKernels& wk = winogradKernels();

  const int tm = nx == 36 ? 4 : 2, ts = tm + 2;  // outputs and inputs per tile side
  const WinoInputFn inputFn = tm == 4 ? wk.input43 : wk.input;
  const WinoOutputFn outputFn = tm == 4 ? wk.output43 : wk.output;
  const int64_t th = (Ho + tm - 1) / tm, tw = (Wo + tm - 1) / tm, T = B * th * tw;
  // tiles per block: the buffers hold nx x TB x channels (F(4x4, 3x3): 36 matrices of 4 times the outputs)
  const int64_t TB = bf16 ? gemmBf16RowBlock() : tm == 4 ? gemmRowBlock() : 2 * gemmRowBlock();
  // tile blocks balanced over the threads, in whole micro-panels of the GEMMs' rows (bf16: 16)
  const RowBlocks rb = balancedRowBlocks(T, TB, bf16 ? 16 : gemmMicroRows(), pool.size());
  // bf16: the input transform writes the GEMMs' A directly, rounded (GemmA::bf16): per xi, depth
  // blocks of kb channels, TBr rows each, rows `lda` apart, zero past Ci to a multiple of 32
  const int64_t kb = gemmBf16DepthBlock(), lda = gemmBf16RowStride(), TBr = (TB + 31) / 32 * 32;
  const int64_t depthBlocks = (Ci + kb - 1) / kb, blockStride = TBr * lda, xiStride = depthBlocks * blockStride;
  const int64_t tailFrom = Ci - (depthBlocks - 1) * kb, tailTo = (tailFrom + 31) / 32 * 32;
  // bf16: output channels in chunks of 64, so the 16 products of a chunk (16 x TB x 64 floats)
  // stay in L2 until the output transform reads them
  const int64_t coChunk = bf16 ? std::min<int64_t>(Co, 64) : Co, allPanels = (Co + 31) / 32;
  pool.parallelForEach(rb.count, [&](int64_t begin, int64_t end, int) {
    float* V = bf16 ? nullptr : tV.get((size_t)(nx * TB * Ci));
    float* M = tM.get((size_t)(nx * TB * Co));
    uint16_t* Vb = nullptr;
    if (bf16) {
      Vb = reinterpret_cast<uint16_t*>(tVb.get((size_t)(16 * xiStride + 1) / 2));
      // the zeros past Ci (the buffer is reused by convolutions of other widths)
      if (tailTo > tailFrom)
        for (int64_t xi = 0; xi < 16; ++xi)
          for (int64_t r = 0; r < TBr; ++r)
            std::fill_n(Vb + xi * xiStride + (depthBlocks - 1) * blockStride + r * lda + tailFrom, tailTo - tailFrom, (uint16_t)0);
    }
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t t0 = rb.begin(blk), n = rb.end(blk) - t0;
      for (int64_t tl = 0; tl < n; ++tl) {
        const int64_t t = t0 + tl, tx = t % tw, ty = (t / tw) % th, b = t / (tw * th);
        const float* src[36];
        for (int i = 0; i < ts; ++i)
          for (int j = 0; j < ts; ++j) {
            const int64_t iy = tm * ty - pt + i, ix = tm * tx - pl + j;
            src[i * ts + j] = (iy < 0 || iy >= Hu || ix < 0 || ix >= Wu) ? nullptr
                                                                            : x + ((b * H + iy / up) * W + ix / up) * Ci;
          }
        if (bf16) wk.inputBf16(src, Ci, Vb + tl * lda, xiStride, kb, blockStride);
        else inputFn(src, Ci, V + tl * Ci, TB * Ci);
      }
      for (int64_t co0 = 0; co0 < Co; co0 += coChunk) {
        const int64_t cw = std::min(coChunk, Co - co0);
        for (int xi = 0; xi < nx; ++xi) {
          GemmA ga;
          if (bf16) {
            ga.bf16 = Vb + xi * xiStride;
            ga.bf16Rows = TBr;
            PrepackedB pb{static_cast<const uint16_t*>(in[1].data) + xi * stride, DType::BF16, Ci, cw, 0};
            pb.firstPanel = co0 / 32;
            pb.allPanels = allPanels;
            gemmPrepacked(n, ga, pb, M + xi * TB * cw, cw, GemmEpilogue{}, false);
          } else {
            ga.data = V + xi * TB * Ci;
            ga.ld = Ci;
            const PrepackedB pb{static_cast<const float*>(in[1].data) + xi * stride, DType::F32, Ci, Co, w.kernel};
            gemmPrepacked(n, ga, pb, M + xi * TB * Co, Co, GemmEpilogue{}, false);
          }
        }
        for (int64_t tl = 0; tl < n; ++tl) {
          const int64_t t = t0 + tl, tx = t % tw, ty = (t / tw) % th, b = t / (tw * th);
          float* dst[16];
          const float* res[16];
          for (int i = 0; i < tm; ++i)
            for (int j = 0; j < tm; ++j) {
              const int64_t oy = tm * ty + i, ox = tm * tx + j;
              const bool inside = oy < Ho && ox < Wo;
              const int64_t off = ((b * Ho + oy) * Wo + ox) * Co + co0;
              dst[i * tm + j] = inside ? y + off : nullptr;
              res[i * tm + j] = inside && residual ? residual + off : nullptr;
            }
          outputFn(M + tl * cw, TB * cw, cw, bias ? bias + co0 : nullptr, act, dst, res);
        }
      }
    }
  });
}

}  // namespace onestep
