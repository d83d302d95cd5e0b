#include "vecmath.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/half.h"
#include "cpu_info.h"

namespace onestep {

namespace {

void actRowScalar(Act act, float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = applyAct(act, x[i]);
}

void softmaxRowScalar(float* x, int64_t n, int64_t visible) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, x[j]);
  double sum = 0;
  for (int64_t j = 0; j < visible; ++j) {
    x[j] = std::exp(x[j] - mx);
    sum += x[j];
  }
  const float inv = (float)(1.0 / sum);
  for (int64_t j = 0; j < visible; ++j) x[j] *= inv;
  for (int64_t j = visible; j < n; ++j) x[j] = 0.0f;
}

float softmaxBlockRowScalar(float* x, int64_t n, int64_t visible, float scale, float* m, float* l) {
  float mx = *m;
  for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, x[j] * scale);
  if (mx == -std::numeric_limits<float>::infinity()) {
    for (int64_t j = 0; j < n; ++j) x[j] = 0.0f;
    return 1.0f;
  }
  const float c = std::exp(*m - mx);
  float sum = 0;
  for (int64_t j = 0; j < visible; ++j) {
    x[j] = std::exp(x[j] * scale - mx);
    sum += x[j];
  }
  for (int64_t j = visible; j < n; ++j) x[j] = 0.0f;
  *m = mx;
  *l = *l * c + sum;
  return c;
}

void channelMomentsScalar(const float* x, int64_t rows, int64_t C, const float* k, double* sum, double* sq) {
  for (int64_t r0 = 0; r0 < rows; r0 += 64) {
    const int64_t r1 = std::min(rows, r0 + 64);
    for (int64_t c = 0; c < C; ++c) {
      float s = 0, q = 0;
      for (int64_t r = r0; r < r1; ++r) {
        const float d = x[r * C + c] - k[c];
        s += d;
        q += d * d;
      }
      sum[c] += s;
      sq[c] += q;
    }
  }
}

void scaleShiftActRowScalar(const float* x, float* y, const float* scale, const float* shift, int64_t n, Act act) {
  for (int64_t c = 0; c < n; ++c) y[c] = applyAct(act, x[c] * scale[c] + shift[c]);
}

void layerNormRowScalar(const float* x, float* y, const float* gamma, const float* beta, int64_t n, double eps) {
  double s1 = 0;
  for (int64_t c = 0; c < n; ++c) s1 += x[c];
  const double mean = s1 / (double)n;
  double s2 = 0;
  for (int64_t c = 0; c < n; ++c) {
    const double d = x[c] - mean;
    s2 += d * d;
  }
  const double rstd = 1.0 / std::sqrt(s2 / (double)n + eps);
  for (int64_t c = 0; c < n; ++c) y[c] = (float)((x[c] - mean) * rstd) * gamma[c] + beta[c];
}

void epilogueRowsScalar(float* c, int64_t ldc, int64_t h, int64_t w, float alpha, const float* bias, Act act, const float* res,
                        int64_t ldr) {
  // a loop per term (each vectorised by the compiler), in the order of the one-pass versions
  for (int64_t i = 0; i < h; ++i) {
    float* row = c + i * ldc;
    if (alpha != 1.0f)
      for (int64_t j = 0; j < w; ++j) row[j] *= alpha;
    if (bias)
      for (int64_t j = 0; j < w; ++j) row[j] += bias[j];
    if (act != Act::None) actRowScalar(act, row, w);
    if (res) {
      const float* r = res + i * ldr;
      for (int64_t j = 0; j < w; ++j) row[j] += r[j];
    }
  }
}

void toBf16Scalar(const void* src, DType dtype, int64_t n, uint16_t* dst) {
  switch (dtype) {
    case DType::BF16: std::memcpy(dst, src, (size_t)n * sizeof(uint16_t)); return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = floatToBf16(halfToFloat(static_cast<const uint16_t*>(src)[i]));
      return;
    default:
      for (int64_t i = 0; i < n; ++i) dst[i] = floatToBf16(static_cast<const float*>(src)[i]);
  }
}

const VecMath kScalar = {"scalar",           actRowScalar,      softmaxRowScalar, softmaxBlockRowScalar, channelMomentsScalar, scaleShiftActRowScalar,
                         layerNormRowScalar, epilogueRowsScalar, toBf16Scalar};

const VecMath* pick() {

  if (simdAllowed() && cpuHas("avx512f") && cpuHas("avx512bw") && cpuHas("avx512vl") && cpuHas("f16c") && vecMathAvx512()) return vecMathAvx512();
  if (simdAllowed() && cpuHas("avx2") && cpuHas("fma") && cpuHas("f16c") && vecMathAvx2()) return vecMathAvx2();
  return &kScalar;
}

}  // namespace

const VecMath& vecMath() {
  static const VecMath* m = pick();
  return *m;
}

}  // namespace onestep
