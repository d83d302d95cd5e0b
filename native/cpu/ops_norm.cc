// group_norm (NHWC, optional fused activation) and layer_norm. Statistics reduced in double.
#include <cmath>
#include <vector>

#include "vecmath.h"
#include "ops.h"
#include "thread_pool.h"

namespace onestep {

void cpuGroupNorm(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const int64_t B = s[0], C = s.back();
  const int64_t P = shapeNumel(s) / (B * C);  // pixels per sample
  const auto at = node.attrsAs<GroupNormAttrs>();
  const int64_t G = at.groups;
  const double eps = at.eps;
  const Act act = at.act;
  const int64_t cpg = C / G;
  const float* x = static_cast<const float*>(in[0].data);
  const float* gamma = static_cast<const float*>(in[1].data);
  const float* beta = static_cast<const float*>(in[2].data);
  float* y = static_cast<float*>(out.data);
  ThreadPool& pool = ThreadPool::global();

  // per-channel moments per (sample, pixel chunk) about the sample's first pixel (a shift that
  // keeps the float partial sums small where the mean is large), then reduced per group in double
  const VecMath& vm = vecMath();
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(P, 4 * pool.size()));
  const int64_t per = (P + chunks - 1) / chunks;
  std::vector<double> sum((size_t)(B * chunks * C), 0.0), sq((size_t)(B * chunks * C), 0.0);
  pool.parallelFor(B * chunks, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t b = t / chunks, p0 = (t % chunks) * per, p1 = std::min(P, p0 + per);
      if (p1 > p0) vm.channelMoments(x + (b * P + p0) * C, p1 - p0, C, x + b * P * C, &sum[(size_t)(t * C)], &sq[(size_t)(t * C)]);
    }
  });
  std::vector<float> scale((size_t)(B * C)), shift((size_t)(B * C));
  const double n = (double)(P * cpg);
  for (int64_t b = 0; b < B; ++b) {
    const float* k = x + b * P * C;
    for (int64_t g = 0; g < G; ++g) {
      double s1 = 0, s2 = 0;
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
        double a = 0, q = 0;
        for (int64_t ch = 0; ch < chunks; ++ch) {
          a += sum[(size_t)((b * chunks + ch) * C + c)];
          q += sq[(size_t)((b * chunks + ch) * C + c)];
        }
        // back from the shift: sum x = a + P k, sum x^2 = q + 2 k a + P k^2
        s1 += a + (double)P * k[c];
        s2 += q + 2.0 * k[c] * a + (double)P * k[c] * k[c];
      }
      const double mean = s1 / n;
      const double var = std::max(0.0, s2 / n - mean * mean);
      const double rstd = 1.0 / std::sqrt(var + eps);
      for (int64_t c = g * cpg; c < (g + 1) * cpg; ++c) {
        scale[(size_t)(b * C + c)] = (float)(rstd * gamma[c]);
        shift[(size_t)(b * C + c)] = (float)(beta[c] - mean * rstd * gamma[c]);
      }
    }
  }
  pool.parallelFor(B * P, 64, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / P;
      vm.scaleShiftActRow(x + r * C, y + r * C, &scale[(size_t)(b * C)], &shift[(size_t)(b * C)], C, act);
    }
  });
}

void cpuLayerNorm(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const int64_t C = s.back(), rows = shapeNumel(s) / C;
  const double eps = node.attrsAs<LayerNormAttrs>().eps;
  const float* x = static_cast<const float*>(in[0].data);
  const float* gamma = static_cast<const float*>(in[1].data);
  const float* beta = static_cast<const float*>(in[2].data);
  float* y = static_cast<float*>(out.data);
  const VecMath& vm = vecMath();
  ThreadPool::global().parallelFor(rows, 16, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) vm.layerNormRow(x + r * C, y + r * C, gamma, beta, C, eps);
  });
}

}  // namespace onestep
