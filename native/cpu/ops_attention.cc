// Scaled dot-product attention over [B, N, H*D] tokens. Queries are processed in tiles of a few
// micro-kernel heights, so the score matrix held at once is tile x keys per thread, never N x N.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>

#include "gemm.h"
#include "vecmath.h"
#include "ops.h"
#include "../core/aligned.h"
#include "thread_pool.h"

namespace onestep {

namespace {
thread_local ScratchBuffer tScores;
}  // namespace

// K and V of every (batch, head) are packed once, then query tiles run in parallel:
// S = scale * Q K^T, row softmax (vectorised), O = S V.
void cpuAttention(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape &qs = *in[0].shape, &ks = *in[1].shape, &vs = *in[2].shape;
  const int64_t B = qs[0], Nq = qs[1], Nk = ks[1];
  const auto at = node.attrsAs<AttentionAttrs>();
  const int64_t H = at.heads;
  const float scale = (float)at.scale;
  const bool causal = at.causal;
  const int64_t D = qs[2] / H, Dv = vs[2] / H;
  const float* q = static_cast<const float*>(in[0].data);
  const float* k = static_cast<const float*>(in[1].data);
  const float* v = static_cast<const float*>(in[2].data);
  float* o = static_cast<float*>(out.data);
  ThreadPool& pool = ThreadPool::global();

  const size_t kSize = gemmPackedBSize(D, Nk), vSize = gemmPackedBSize(Nk, Dv);
  const size_t per = ((kSize + vSize + 15) / 16) * 16;
  AlignedArray<float> packedBlock = alignedArray<float>(per * (size_t)(B * H));
  float* packed = packedBlock.get();
  pool.parallelFor(B * H * 2, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / 2, b = bh / H, h = bh % H;
      float* dst = packed + per * (size_t)bh;
      GemmB g;
      if (t % 2 == 0) {
        g.data = k + b * Nk * H * D + h * D;
        g.ld = H * D;
        g.nk = true;
        gemmPackB(g, D, Nk, dst);
      } else {
        g.data = v + b * Nk * H * Dv + h * Dv;
        g.ld = H * Dv;
        g.nk = false;
        gemmPackB(g, Nk, Dv, dst + kSize);
      }
    }
  });

  const int64_t tile = gemmRowBlock();
  const int64_t tiles = (Nq + tile - 1) / tile;
  const VecMath& vm = vecMath();
  pool.parallelFor(B * H * tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t % tiles, bh = t / tiles, b = bh / H, h = bh % H;
      const int64_t q0 = ti * tile, rows = std::min(tile, Nq - q0);
      float* s = tScores.get((size_t)(rows * Nk));
      GemmA qa;
      qa.data = q + (b * Nq + q0) * H * D + h * D;
      qa.ld = H * D;
      GemmEpilogue e1;
      e1.alpha = scale;
      const float* pk = packed + per * (size_t)bh;
      gemmPackedB(rows, Nk, D, qa, pk, s, Nk, e1);
      for (int64_t i = 0; i < rows; ++i) vm.softmaxRow(s + i * Nk, Nk, causal ? std::min(Nk, q0 + i + 1) : Nk);
      GemmA sa;
      sa.data = s;
      sa.ld = Nk;
      gemmPackedB(rows, Dv, Nk, sa, pk + kSize, o + (b * Nq + q0) * H * Dv + h * Dv, H * Dv, GemmEpilogue{});
    }
  });
}

}  // namespace onestep
