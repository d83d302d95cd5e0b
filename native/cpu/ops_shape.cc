// Data movement: concat, upsample, permute, reshape (a view, never called), slice, embedding
// lookups, row selection; and the sinusoidal timestep embedding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "ops.h"
#include "thread_pool.h"

namespace onestep {

void cpuConcat(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  const int64_t ca = in[0].shape->back(), cb = in[1].shape->back(), c = ca + cb;
  const int64_t rows = out.numel() / std::max<int64_t>(c, 1);
  const float* a = static_cast<const float*>(in[0].data);
  const float* b = static_cast<const float*>(in[1].data);
  float* y = static_cast<float*>(out.data);
  ThreadPool::global().parallelFor(rows, 64, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      std::memcpy(y + r * c, a + r * ca, ca * sizeof(float));
      std::memcpy(y + r * c + ca, b + r * cb, cb * sizeof(float));
    }
  });
}

// torch's nearest_idx (F.interpolate(mode='nearest', size=...)): the same index, the scale in float
static inline int64_t nearestSource(int64_t dst, int64_t in, int64_t out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = (float)in / (float)out;
  return std::min((int64_t)std::floor((float)dst * scale), in - 1);
}

void cpuUpsample(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const int64_t B = s[0], H = s[1], W = s[2], C = s[3];
  const auto at = node.attrsAs<UpsampleAttrs>();
  const int64_t Ho = at.out_h, Wo = at.out_w;
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  std::vector<int64_t> col(Wo);
  for (int64_t ox = 0; ox < Wo; ++ox) col[ox] = nearestSource(ox, W, Wo);
  ThreadPool::global().parallelFor(B * Ho, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / Ho, oy = r % Ho;
      const float* src = x + (b * H + nearestSource(oy, H, Ho)) * W * C;
      float* dst = y + r * Wo * C;
      for (int64_t ox = 0; ox < Wo; ++ox) std::memcpy(dst + ox * C, src + col[ox] * C, C * sizeof(float));
    }
  });
}

void cpuPermute(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const int r = (int)s.size();
  std::vector<int64_t> perm(r), inStride(r), outShape(r);
  int64_t st = 1;
  for (int i = r - 1; i >= 0; --i) {
    inStride[i] = st;
    st *= s[i];
  }
  const auto at = node.attrsAs<PermuteAttrs>();
  for (int i = 0; i < r; ++i) {
    perm[i] = permuteAxis(at, i);
    outShape[i] = s[perm[i]];
  }
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  const int64_t inner = outShape[r - 1], innerStride = inStride[perm[r - 1]];
  const int64_t rows = out.numel() / std::max<int64_t>(inner, 1);
  ThreadPool::global().parallelFor(rows, 64, [&](int64_t begin, int64_t end, int) {
    for (int64_t row = begin; row < end; ++row) {
      int64_t rem = row, off = 0;
      for (int i = r - 2; i >= 0; --i) {
        off += (rem % outShape[i]) * inStride[perm[i]];
        rem /= outShape[i];
      }
      float* dst = y + row * inner;
      if (innerStride == 1) std::memcpy(dst, x + off, inner * sizeof(float));
      else
        for (int64_t j = 0; j < inner; ++j) dst[j] = x[off + j * innerStride];
    }
  });
}

void cpuAvgPool(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const Shape& o = *out.shape;
  const int64_t k = node.attrsAs<AvgPoolAttrs>().k;
  const int64_t W = s[2], C = s[3], Ho = o[1], Wo = o[2];
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  const float inv = 1.0f / (float)(k * k);
  ThreadPool::global().parallelFor(o[0] * Ho, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t b = r / Ho, oy = r % Ho;
      for (int64_t ox = 0; ox < Wo; ++ox) {
        float* dst = y + (r * Wo + ox) * C;
        for (int64_t c = 0; c < C; ++c) dst[c] = 0.0f;
        for (int64_t dy = 0; dy < k; ++dy)
          for (int64_t dx = 0; dx < k; ++dx) {
            const float* src = x + ((b * s[1] + oy * k + dy) * W + ox * k + dx) * C;
            for (int64_t c = 0; c < C; ++c) dst[c] += src[c];
          }
        for (int64_t c = 0; c < C; ++c) dst[c] *= inv;
      }
    }
  });
}

void cpuReshape(const GraphNode&, const std::vector<TensorRef>&, const TensorRef&) {
  // a view: the executor aliases the storage and never calls this
}

void cpuSlice(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const auto at = node.attrsAs<SliceAttrs>();
  const int axis = (int)at.axis;
  const int64_t start = at.start, len = at.length;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  const float* x = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(y + o * len * inner, x + (o * s[axis] + start) * inner, len * inner * sizeof(float));
}

namespace {
float loadAny(const void* base, DType t, int64_t idx) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[idx];
    case DType::F16: return halfToFloat(static_cast<const uint16_t*>(base)[idx]);
    case DType::BF16: return bf16ToFloat(static_cast<const uint16_t*>(base)[idx]);
    default: fail("ERR_ONESTEP_DTYPE", "cannot read ", dtypeName(t), " as a float");
  }
}
}  // namespace

void cpuEmbedding(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  const int64_t n = in[0].numel();
  const int64_t V = (*in[1].shape)[0], C = (*in[1].shape)[1];
  const int64_t* ids = static_cast<const int64_t*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids[i];
    check(id >= 0 && id < V, "ERR_ONESTEP_VALUE", "embedding: id ", id, " at position ", i, " is outside [0, ", V, ")");
    for (int64_t c = 0; c < C; ++c) y[i * C + c] = loadAny(in[1].data, in[1].dtype, id * C + c);
  }
}

void cpuSelectRows(const GraphNode&, const std::vector<TensorRef>& in, const TensorRef& out) {
  const Shape& s = *in[0].shape;
  const int64_t B = s[0], L = s[1], C = s[2];
  const float* x = static_cast<const float*>(in[0].data);
  const int64_t* idx = static_cast<const int64_t*>(in[1].data);
  float* y = static_cast<float*>(out.data);
  for (int64_t b = 0; b < B; ++b) {
    check(idx[b] >= 0 && idx[b] < L, "ERR_ONESTEP_VALUE", "select_rows: index ", idx[b], " of sample ", b,
          " is outside [0, ", L, ")");
    std::memcpy(y + b * C, x + (b * L + idx[b]) * C, C * sizeof(float));
  }
}

// Sinusoidal embeddings in float32, in the operation order of the reference:
//   form 0, diffusers get_timestep_embedding: freq_k = exp((-ln(10000) * k) / (half - shift))
//   form 1, LCM get_guidance_scale_embedding: freq_k = exp(k * -(ln(10000) / (half - 1)))
// arg = scale * (t * freq_k); out = [sin, cos], or [cos, sin] with flip_sin_to_cos.
void cpuTimestepEmbedding(const GraphNode& node, const std::vector<TensorRef>& in, const TensorRef& out) {
  const int64_t B = (*in[0].shape)[0];
  const auto at = node.attrsAs<TimestepEmbeddingAttrs>();
  const int64_t dim = at.dim, half = dim / 2;
  const bool flip = at.flip_sin_to_cos;
  const float shift = (float)at.shift, scale = (float)at.scale;
  const bool guidanceForm = at.form == 1;
  const float* t = static_cast<const float*>(in[0].data);
  float* y = static_cast<float*>(out.data);
  const float ln = std::log(10000.0f);
  std::vector<float> freq((size_t)half);
  for (int64_t k = 0; k < half; ++k) {
    const float exponent = guidanceForm ? (float)k * -(ln / ((float)half - shift)) : (-ln * (float)k) / ((float)half - shift);
    freq[(size_t)k] = std::exp(exponent);
  }
  for (int64_t b = 0; b < B; ++b) {
    float* row = y + b * dim;
    for (int64_t k = 0; k < half; ++k) {
      const float arg = scale * (t[b] * freq[(size_t)k]);
      row[flip ? half + k : k] = std::sin(arg);
      row[flip ? k : half + k] = std::cos(arg);
    }
  }
}

}  // namespace onestep
