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
// K and V packed for one call (kept between calls: a fresh mapping per call costs page faults)
thread_local ScratchBuffer tPacked;

// K and V of every (batch, head) are packed once, then query tiles run in parallel:
// S = scale * Q K^T, row softmax (vectorised), O = S V. With bf16 operands (precision 'bf16'), K
// and V are packed as bf16 panels and Q and the probabilities rounded to bf16 as they are packed;
// scores, softmax and sums stay float32, and keys go in blocks with an online softmax (the
// probabilities rounded are exp(s - the row's running max), normalised at the end).
void attention(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out, bool bf16) {
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

  // per (batch, head): K^T as B [D x Nk] then V as B [Nk x Dv], in floats (bf16 panels take half)
  const size_t kSize = bf16 ? (gemmPrepackBf16Elems(D, Nk) + 1) / 2 : gemmPackedBSize(D, Nk);
  const size_t vSize = bf16 ? (gemmPrepackBf16Elems(Nk, Dv) + 1) / 2 : gemmPackedBSize(Nk, Dv);
  const size_t per = ((kSize + vSize + 15) / 16) * 16;
  float* packed = tPacked.get(per * (size_t)(B * H));
  pool.parallelFor(B * H * 2, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t bh = t / 2, b = bh / H, h = bh % H;
      float* dst = packed + per * (size_t)bh;
      GemmB g;
      const bool isK = t % 2 == 0;
      g.data = isK ? k + b * Nk * H * D + h * D : v + b * Nk * H * Dv + h * Dv;
      g.ld = isK ? H * D : H * Dv;
      g.nk = isK;
      const int64_t K = isK ? D : Nk, N = isK ? Nk : Dv;
      if (!isK) dst += kSize;
      if (bf16) gemmPrepackBf16(g, K, N, reinterpret_cast<uint16_t*>(dst));
      else gemmPackB(g, K, N, dst);
    }
  });

  const VecMath& vm = vecMath();
  const int64_t kb = gemmBf16DepthBlock();
  if (bf16 && D <= kb) {
    // flash-style: keys in blocks of the bf16 depth block (each block of V's packing is a product
    // of its own, and K's panels for the block are contiguous since D fits one depth block), an
    // online softmax per row; the scores held at once are tile x kb (L2-sized), never tile x Nk
    const int64_t tile = gemmBf16RowBlock(), tiles = (Nq + tile - 1) / tile;
    const int64_t Dp = (D + 31) / 32 * 32;
    pool.parallelFor(B * H * tiles, 1, [&](int64_t begin, int64_t end, int) {
      float* s = tScores.get((size_t)(tile * (kb + Dv) + 2 * tile));
      float* part = s + tile * kb;      // P V of one key block [rows][Dv]
      float* mx = part + tile * Dv;     // running max per row
      float* sum = mx + tile;           // running sum per row
      for (int64_t t = begin; t < end; ++t) {
        const int64_t ti = t % tiles, bh = t / tiles, b = bh / H, h = bh % H;
        const int64_t q0 = ti * tile, rows = std::min(tile, Nq - q0);
        const uint16_t* pk = reinterpret_cast<const uint16_t*>(packed + per * (size_t)bh);
        const uint16_t* pv = reinterpret_cast<const uint16_t*>(packed + per * (size_t)bh + kSize);
        float* ot = o + (b * Nq + q0) * H * Dv + h * Dv;
        const int64_t ldo = H * Dv;
        GemmA qa;
        qa.data = q + (b * Nq + q0) * H * D + h * D;
        qa.ld = H * D;
        std::fill(mx, mx + rows, -std::numeric_limits<float>::infinity());
        std::fill(sum, sum + rows, 0.0f);
        const int64_t keys = causal ? std::min(Nk, q0 + rows) : Nk;  // keys any row of the tile sees
        for (int64_t j0 = 0; j0 < keys; j0 += kb) {
          const int64_t nb = std::min(kb, Nk - j0);
          gemmPrepacked(rows, qa, PrepackedB{pk + (j0 / 32) * Dp * 32, DType::BF16, D, nb, 0}, s, nb, GemmEpilogue{}, false);
          for (int64_t i = 0; i < rows; ++i) {
            const int64_t visible = causal ? std::clamp<int64_t>(q0 + i + 1 - j0, 0, nb) : nb;
            const float c = vm.softmaxBlockRow(s + i * nb, nb, visible, scale, mx + i, sum + i);
            if (j0 > 0) {
              float* orow = ot + i * ldo;
              for (int64_t d = 0; d < Dv; ++d) orow[d] *= c;
            }
          }
          GemmA sa;
          sa.data = s;
          sa.ld = nb;
          // V's depth block j0 / kb: keys [j0, j0 + nb), Dv columns
          const PrepackedB vb{pv + j0 * ((Dv + 31) / 32 * 32), DType::BF16, nb, Dv, 0};
          if (j0 == 0) {
            gemmPrepacked(rows, sa, vb, ot, ldo, GemmEpilogue{}, false);
          } else {
            gemmPrepacked(rows, sa, vb, part, Dv, GemmEpilogue{}, false);
            for (int64_t i = 0; i < rows; ++i)
              for (int64_t d = 0; d < Dv; ++d) ot[i * ldo + d] += part[i * Dv + d];
          }
        }
        for (int64_t i = 0; i < rows; ++i) {
          const float inv = 1.0f / sum[i];
          for (int64_t d = 0; d < Dv; ++d) ot[i * ldo + d] *= inv;
        }
      }
    });
    return;
  }

  // float32 (and bf16 heads longer than a depth block): a tile's scores for all keys at once; in
  // float32 the scale is applied inside the exponential and the rows of P V are normalised after
  // (tile x Dv divisions instead of tile x Nk)
  const int64_t tile = gemmRowBlock();
  const int64_t tiles = (Nq + tile - 1) / tile;
  pool.parallelFor(B * H * tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t % tiles, bh = t / tiles, b = bh / H, h = bh % H;
      const int64_t q0 = ti * tile, rows = std::min(tile, Nq - q0);
      float* s = tScores.get((size_t)(rows * Nk + rows));
      float* inv = s + rows * Nk;
      GemmA qa;
      qa.data = q + (b * Nq + q0) * H * D + h * D;
      qa.ld = H * D;
      const float* pk = packed + per * (size_t)bh;
      float* ot = o + (b * Nq + q0) * H * Dv + h * Dv;
      const int64_t ldo = H * Dv;
      GemmA sa;
      sa.data = s;
      sa.ld = Nk;
      if (bf16) {
        GemmEpilogue e1;
        e1.alpha = scale;
        gemmPrepacked(rows, qa, PrepackedB{pk, DType::BF16, D, Nk, 0}, s, Nk, e1, false);
        for (int64_t i = 0; i < rows; ++i) vm.softmaxRow(s + i * Nk, Nk, causal ? std::min(Nk, q0 + i + 1) : Nk);
        gemmPrepacked(rows, sa, PrepackedB{pk + kSize, DType::BF16, Nk, Dv, 0}, ot, ldo, GemmEpilogue{}, false);
        continue;
      }
      gemmPackedB(rows, Nk, D, qa, pk, s, Nk, GemmEpilogue{});
      for (int64_t i = 0; i < rows; ++i) {
        float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
        vm.softmaxBlockRow(s + i * Nk, Nk, causal ? std::min(Nk, q0 + i + 1) : Nk, scale, &m, &l);
        inv[i] = 1.0f / l;
      }
      gemmPackedB(rows, Dv, Nk, sa, pk + kSize, ot, ldo, GemmEpilogue{});
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t d = 0; d < Dv; ++d) ot[i * ldo + d] *= inv[i];
    }
  });
}

}  // namespace

void cpuAttention(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) { attention(node, in, out, false); }
void cpuAttentionBf16(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) { attention(node, in, out, true); }

}  // namespace onestep
