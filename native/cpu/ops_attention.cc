// Scaled dot-product attention over [B, N, H*D] tokens. Queries are processed in tiles of up to
// 64 rows, so the score matrix held at once is tile x keys per thread, never N x N.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <new>

#include "gemm.h"
#include "ops.h"
#include "thread_pool.h"

namespace onestep {

namespace {
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64));
      if (!p) {
        cap = 0;
        throw std::bad_alloc();
      }
      cap = n;
    }
    return p;
  }
};
thread_local Scratch tScores;
constexpr int64_t kTile = 64;
}  // namespace

void cpuAttention(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape &qs = *in[0].shape, &ks = *in[1].shape, &vs = *in[2].shape;
  const int64_t B = qs[0], Nq = qs[1], Nk = ks[1];
  const int64_t H = (int64_t)node.attrs[0];
  const float scale = (float)node.attrs[1];
  const bool causal = node.attrs[2] != 0;
  const int64_t D = qs[2] / H, Dv = vs[2] / H;
  const float* q = static_cast<const float*>(in[0].data);
  const float* k = static_cast<const float*>(in[1].data);
  const float* v = static_cast<const float*>(in[2].data);
  float* o = static_cast<float*>(out.data);
  const int64_t tiles = (Nq + kTile - 1) / kTile;
  ThreadPool::global().parallelFor(B * H * tiles, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t tile = t % tiles, h = (t / tiles) % H, b = t / (tiles * H);
      const int64_t q0 = tile * kTile, rows = std::min(kTile, Nq - q0);
      float* s = tScores.get((size_t)(rows * Nk));
      // S = scale * Q K^T
      GemmB kb;
      kb.data = k + b * Nk * H * D + h * D;
      kb.ld = H * D;
      kb.nk = true;
      GemmEpilogue e1;
      e1.alpha = scale;
      gemm(rows, Nk, D, q + (b * Nq + q0) * H * D + h * D, H * D, kb, s, Nk, e1, false);
      // row softmax (causal: key j visible to query i iff j <= i)
      for (int64_t i = 0; i < rows; ++i) {
        float* r = s + i * Nk;
        const int64_t visible = causal ? std::min(Nk, q0 + i + 1) : Nk;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, r[j]);
        double sum = 0;
        for (int64_t j = 0; j < visible; ++j) {
          r[j] = std::exp(r[j] - mx);
          sum += r[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < visible; ++j) r[j] *= inv;
        for (int64_t j = visible; j < Nk; ++j) r[j] = 0.0f;
      }
      // O = P V
      GemmB vb;
      vb.data = v + b * Nk * H * Dv + h * Dv;
      vb.ld = H * Dv;
      vb.nk = false;
      gemm(rows, Dv, Nk, s, Nk, vb, o + (b * Nq + q0) * H * Dv + h * Dv, H * Dv, GemmEpilogue{}, false);
    }
  });
}

}  // namespace onestep
