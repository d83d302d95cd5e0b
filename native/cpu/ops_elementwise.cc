// add / mul with broadcasting, unary (affine + activation + clamp), geglu.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "vecmath.h"
#include "ops.h"
#include "thread_pool.h"

namespace onestep {

namespace {

// Applies f(a, b) elementwise with b broadcast to a's shape (dims right-aligned, 1 = broadcast).
template <typename F>
void broadcastBinary(const TensorRef& ta, const TensorRef& tb, const TensorRef& out, F f) {
  const Shape& as = *ta.shape;
  Shape bs(as.size() - tb.shape->size(), 1);
  bs.insert(bs.end(), tb.shape->begin(), tb.shape->end());
  const int r = (int)as.size();
  const float* a = static_cast<const float*>(ta.data);
  const float* b = static_cast<const float*>(tb.data);
  float* y = static_cast<float*>(out.data);
  const int64_t n = shapeNumel(as);
  if (n == 0) return;
  // b strides in a's index space (0 where broadcast)
  std::vector<int64_t> bstride(r, 0);
  int64_t st = 1;
  for (int i = r - 1; i >= 0; --i) {
    bstride[i] = bs[i] == 1 ? 0 : st;
    st *= bs[i];
  }
  const int64_t inner = r ? as[r - 1] : 1;
  const int64_t innerStride = r ? bstride[r - 1] : 0;
  const int64_t rows = n / std::max<int64_t>(inner, 1);
  ThreadPool::global().parallelFor(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(inner, 1)),
                                   [&](int64_t begin, int64_t end, int) {
                                     for (int64_t row = begin; row < end; ++row) {
                                       // offset of b for this row
                                       int64_t rem = row, boff = 0;
                                       for (int i = r - 2; i >= 0; --i) {
                                         boff += (rem % as[i]) * bstride[i];
                                         rem /= as[i];
                                       }
                                       const float* ar = a + row * inner;
                                       float* yr = y + row * inner;
                                       const float* br = b + boff;
                                       if (innerStride)
                                         for (int64_t j = 0; j < inner; ++j) yr[j] = f(ar[j], br[j]);
                                       else
                                         for (int64_t j = 0; j < inner; ++j) yr[j] = f(ar[j], br[0]);
                                     }
                                   });
}

}  // namespace

void cpuAdd(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  broadcastBinary(in[0], in[1], out, [](float x, float y) { return x + y; });
}

void cpuMul(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  broadcastBinary(in[0], in[1], out, [](float x, float y) { return x * y; });
}

void cpuUnary(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const auto at = node.attrsAs<UnaryAttrs>();
  const Act act = at.act;
  const float a = (float)at.a, b = (float)at.b, c = (float)at.c, d = (float)at.d;
  const double lo = at.lo, hi = at.hi;
  const bool clampIt = std::isfinite(lo) || std::isfinite(hi);
  const float flo = std::isfinite(lo) ? (float)lo : -INFINITY, fhi = std::isfinite(hi) ? (float)hi : INFINITY;
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  ThreadPool::global().parallelFor(out.numel(), 16384, [&](int64_t begin, int64_t end, int) {
    const int64_t n = end - begin;
    float* yr = y + begin;
    const float* xr = x + begin;
    for (int64_t i = 0; i < n; ++i) yr[i] = a * xr[i] + b;
    applyActRow(act, yr, n);
    if (c != 1.0f || d != 0.0f)
      for (int64_t i = 0; i < n; ++i) yr[i] = c * yr[i] + d;
    if (clampIt)
      for (int64_t i = 0; i < n; ++i) yr[i] = std::min(std::max(yr[i], flo), fhi);
  });
}

void cpuSchedulerStep(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const int64_t n = out.numel();
  const bool cfg = in[1].numel() == 2 * n;
  const float* x = static_cast<const float*>(in[0].data);
  const float* o = static_cast<const float*>(in[1].data);
  const float* c = static_cast<const float*>(in[2].data);
  const float* noise = in.size() > 3 ? static_cast<const float*>(in[3].data) : nullptr;
  const bool wantDenoised = node.attrsAs<SchedulerStepAttrs>().select == 1;
  float* y = static_cast<float*>(out.data);
  for (int64_t i = 0; i < n; ++i) {
    const float e = cfg ? c[6] * o[i] + c[7] * o[n + i] : o[i];
    const float d = c[0] * x[i] + c[1] * e;
    if (wantDenoised) {
      y[i] = d;
    } else {
      float p = c[2] * x[i] + c[3] * e + c[4] * d;
      if (noise) p += c[5] * noise[i];
      y[i] = p;
    }
  }
}

void cpuGeglu(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  const int64_t C = out.shape->back(), rows = out.numel() / std::max<int64_t>(C, 1);
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  ThreadPool::global().parallelFor(rows, 16, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * 2 * C;
      float* yr = y + r * C;
      std::memcpy(yr, xr + C, C * sizeof(float));
      applyActRow(Act::Gelu, yr, C);
      for (int64_t j = 0; j < C; ++j) yr[j] *= xr[j];
    }
  });
}

}  // namespace onestep
