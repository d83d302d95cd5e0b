// The vector math (vecmath.h's VecMath: exp, the activations built on it, softmax rows and blocks,
// channel moments, scale-shift-activation and layer-norm rows, the GEMM epilogue), written once
// over a vector type: W floats at a time, tails by the ISA's masked loads and stores.
//
// Included by one file per ISA (vecmath_avx512.cc, vecmath_avx2.cc) inside its
// ONESTEP_SIMD_BEGIN / END, after the standard headers below (so that no library code is first
// compiled for the ISA): everything here has internal linkage, so each file's copy is compiled
// for its own ISA. V supplies (static, inline):
//   using vec; W (lanes); zero(); set1(x); loadu(p) / storeu(p, v); add, sub, mul, div, min, max
//   (a op b); fmadd(a, b, c) (a * b + c), fnmadd (c - a * b), fmsub (a * b - c);
//   roundNearest(x); scale2(p, n) (p * 2^n for integral n in [-151, 128], rounded once); abs(x);
//   copySign(r, x) (r with x's sign bit or'ed in); hmax(v) / hsum(v) (over the lanes, float);
//   hsumd(v) (the lanes summed in double); storeAligned / loadAligned (a W-float buffer);
//   Lanes(n) (lanes [0, n), 0 <= n <= W) with load(p) (zeros past n, nothing read there),
//   store(p, v) (nothing written past n), keep(v) (zeros past n), maxInto(acc, v) (max in the
//   first n lanes, acc past them), addDoubles(double* dst, v) (dst[i] += v[i], i < n),
//   loadHalf(p) (F16 values as floats, zeros past n) and n; storeBf16(dst, lanes, v) (v rounded
//   to bf16 as floatToBf16).
// The file's table: constexpr VecMath k = {"isa", VecMathSimd<V>::actRow, ...} (constant
// initialisation: no code of the ISA runs before the CPU is checked).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "vecmath.h"

namespace onestep {
namespace {

template <typename V>
struct VecMathSimd {
  using vec = typename V::vec;
  using Lanes = typename V::Lanes;
  static constexpr int W = V::W;

  // exp: Cephes-style polynomial (~1 ulp), the argument clamped to [-104, 88.7]
  static vec exp(vec x) {
    x = V::min(V::max(x, V::set1(-104.0f)), V::set1(88.7f));
    const vec n = V::roundNearest(V::mul(x, V::set1(1.44269504088896341f)));
    vec r = V::fnmadd(n, V::set1(0.693359375f), x);
    r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
    vec p = V::set1(1.9875691500e-4f);
    p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
    p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
    p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
    p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
    p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
    p = V::fmadd(p, V::mul(r, r), V::add(r, V::set1(1.0f)));
    return V::scale2(p, n);
  }

  // erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)
  static vec erf(vec x) {
    const vec ax = V::abs(x);
    const vec t = V::div(V::set1(1.0f), V::fmadd(ax, V::set1(0.3275911f), V::set1(1.0f)));
    vec y = V::set1(1.061405429f);
    y = V::fmadd(y, t, V::set1(-1.453152027f));
    y = V::fmadd(y, t, V::set1(1.421413741f));
    y = V::fmadd(y, t, V::set1(-0.284496736f));
    y = V::fmadd(y, t, V::set1(0.254829592f));
    y = V::mul(y, t);
    const vec e = exp(V::mul(V::sub(V::zero(), ax), ax));
    return V::copySign(V::fnmadd(y, e, V::set1(1.0f)), x);
  }

  static vec sigmoid(vec x) { return V::div(V::set1(1.0f), V::add(V::set1(1.0f), exp(V::sub(V::zero(), x)))); }

  static vec act(Act a, vec x) {
    switch (a) {
      case Act::Silu: return V::mul(x, sigmoid(x));
      case Act::QuickGelu: return V::mul(x, sigmoid(V::mul(x, V::set1(1.702f))));
      case Act::Gelu: {
        const vec e = erf(V::mul(x, V::set1(0.70710678118654752f)));
        return V::mul(V::mul(V::set1(0.5f), x), V::add(V::set1(1.0f), e));
      }
      case Act::Relu: return V::max(x, V::zero());
      case Act::Sigmoid: return sigmoid(x);
      case Act::Exp: return exp(x);
      default: return x;  // handled by the caller
    }
  }

  static void actRow(Act a, float* x, int64_t n) {
    if (a == Act::None) return;
    if (a == Act::Tanh || a == Act::GeluTanh) {  // rare: exact scalar path
      for (int64_t i = 0; i < n; ++i) x[i] = applyAct(a, x[i]);
      return;
    }
    int64_t i = 0;
    for (; i + W <= n; i += W) V::storeu(x + i, act(a, V::loadu(x + i)));
    if (i < n) {
      const Lanes m(n - i);
      m.store(x + i, act(a, m.load(x + i)));
    }
  }

  // the max of x[0..visible) (-inf for none)
  static float rowMax(const float* x, int64_t visible) {
    vec mx = V::set1(-std::numeric_limits<float>::infinity());
    int64_t j = 0;
    for (; j + W <= visible; j += W) mx = V::max(mx, V::loadu(x + j));
    if (j < visible) {
      const Lanes m(visible - j);
      mx = m.maxInto(mx, m.load(x + j));
    }
    return V::hmax(mx);
  }

  // x[j] = exp(x[j] * sv - mv) for j < visible; returns their sum
  static float expRow(float* x, int64_t visible, vec sv, vec mv) {
    vec sum = V::zero();
    int64_t j = 0;
    for (; j + W <= visible; j += W) {
      const vec e = exp(V::fmsub(V::loadu(x + j), sv, mv));
      V::storeu(x + j, e);
      sum = V::add(sum, e);
    }
    if (j < visible) {
      const Lanes m(visible - j);
      const vec e = exp(V::fmsub(m.load(x + j), sv, mv));
      m.store(x + j, e);
      sum = V::add(sum, m.keep(e));
    }
    return V::hsum(sum);
  }

  static void softmaxRow(float* x, int64_t n, int64_t visible) {
    const vec m = V::set1(rowMax(x, visible));
    const vec inv = V::set1(1.0f / expRow(x, visible, V::set1(1.0f), m));
    int64_t j = 0;
    for (; j + W <= visible; j += W) V::storeu(x + j, V::mul(V::loadu(x + j), inv));
    if (j < visible) {
      const Lanes t(visible - j);
      t.store(x + j, V::mul(t.load(x + j), inv));
    }
    for (j = visible; j < n; ++j) x[j] = 0.0f;
  }

  static float softmaxBlockRow(float* x, int64_t n, int64_t visible, float scale, float* m, float* l) {
    // the max of the raw scores, scaled after (scale > 0)
    const float newMax = std::max(*m, rowMax(x, visible) * scale);
    if (newMax == -std::numeric_limits<float>::infinity()) {
      for (int64_t j = 0; j < n; ++j) x[j] = 0.0f;
      return 1.0f;
    }
    const float sum = expRow(x, visible, V::set1(scale), V::set1(newMax));
    for (int64_t j = visible; j < n; ++j) x[j] = 0.0f;
    const float c = std::exp(*m - newMax);
    *m = newMax;
    *l = *l * c + sum;
    return c;
  }

  static void channelMoments(const float* x, int64_t rows, int64_t C, const float* k, double* sum, double* sq) {
    for (int64_t r0 = 0; r0 < rows; r0 += 64) {
      const int64_t r1 = std::min(rows, r0 + 64);
      for (int64_t c = 0; c < C; c += W) {
        const Lanes m(std::min<int64_t>(W, C - c));
        const vec kv = m.load(k + c);
        vec s = V::zero(), q = V::zero();
        for (int64_t r = r0; r < r1; ++r) {
          const vec d = V::sub(m.load(x + r * C + c), kv);
          s = V::add(s, d);
          q = V::fmadd(d, d, q);
        }
        m.addDoubles(sum + c, s);
        m.addDoubles(sq + c, q);
      }
    }
  }

  static void scaleShiftActRow(const float* x, float* y, const float* scale, const float* shift, int64_t n, Act a) {
    if (a == Act::Tanh || a == Act::GeluTanh) {  // the exact scalar path of actRow
      scaleShiftActRow(x, y, scale, shift, n, Act::None);
      actRow(a, y, n);
      return;
    }
    int64_t c = 0;
    for (; c + W <= n; c += W) V::storeu(y + c, act(a, V::fmadd(V::loadu(x + c), V::loadu(scale + c), V::loadu(shift + c))));
    if (c < n) {
      const Lanes m(n - c);
      m.store(y + c, act(a, V::fmadd(m.load(x + c), m.load(scale + c), m.load(shift + c))));
    }
  }

  // float lanes over the row (at most a few thousand values: the text encoders' and UNets'
  // widths), the lanes added in double; the deviations from the (float) mean in a second pass,
  // whose sum also corrects the mean (two-pass with correction: the mean's rounding and the first
  // pass's float sums do not reach the result where |mean| is large against the deviation)
  static void layerNormRow(const float* x, float* y, const float* gamma, const float* beta, int64_t n, double eps) {
    const int64_t full = n / W * W;
    const Lanes tail(n - full);
    vec s0 = V::zero(), s1 = V::zero();
    int64_t c = 0;
    for (; c + 2 * W <= full; c += 2 * W) {
      s0 = V::add(s0, V::loadu(x + c));
      s1 = V::add(s1, V::loadu(x + c + W));
    }
    for (; c < full; c += W) s0 = V::add(s0, V::loadu(x + c));
    if (tail.n) s1 = V::add(s1, tail.load(x + full));
    const float m0 = (float)((V::hsumd(s0) + V::hsumd(s1)) / (double)n);
    const vec m0v = V::set1(m0);
    vec d0s = V::zero(), d1s = V::zero(), q0 = V::zero(), q1 = V::zero();
    for (c = 0; c + 2 * W <= full; c += 2 * W) {
      const vec d0 = V::sub(V::loadu(x + c), m0v), d1 = V::sub(V::loadu(x + c + W), m0v);
      d0s = V::add(d0s, d0);
      d1s = V::add(d1s, d1);
      q0 = V::fmadd(d0, d0, q0);
      q1 = V::fmadd(d1, d1, q1);
    }
    for (; c < full; c += W) {
      const vec d = V::sub(V::loadu(x + c), m0v);
      d0s = V::add(d0s, d);
      q0 = V::fmadd(d, d, q0);
    }
    if (tail.n) {
      const vec d = tail.keep(V::sub(tail.load(x + full), m0v));
      d1s = V::add(d1s, d);
      q1 = V::fmadd(d, d, q1);
    }
    // mean = m0 + delta; sum (x - mean)^2 = sum (x - m0)^2 - n delta^2
    const double delta = (V::hsumd(d0s) + V::hsumd(d1s)) / (double)n;
    const double var = std::max(0.0, (V::hsumd(q0) + V::hsumd(q1)) / (double)n - delta * delta);
    // x - m0 is exact where x is near m0; delta, small, is subtracted after (a float mean m0 + delta
    // would be off by half an ulp of the mean: 5e-4 at 1e4, against deviations of a few units)
    const vec dv = V::set1((float)delta);
    const vec rv = V::set1((float)(1.0 / std::sqrt(var + eps)));
    for (c = 0; c < full; c += W) {
      const vec v = V::mul(V::sub(V::sub(V::loadu(x + c), m0v), dv), rv);
      V::storeu(y + c, V::fmadd(v, V::loadu(gamma + c), V::loadu(beta + c)));
    }
    if (tail.n) {
      const vec v = V::mul(V::sub(V::sub(tail.load(x + full), m0v), dv), rv);
      tail.store(y + full, V::fmadd(v, tail.load(gamma + full), tail.load(beta + full)));
    }
  }

  // W columns of a row (the first m.n): the load, alpha, bias, activation, residual and store in
  // registers
  [[gnu::always_inline]] static void epilogueVec(float* row, const float* bias, const float* r, Lanes m, vec alpha, bool scale, Act a) {
    vec v = m.load(row);
    if (scale) v = V::mul(v, alpha);
    if (bias) v = V::add(v, m.load(bias));
    v = act(a, v);
    if (r) v = V::add(v, m.load(r));
    m.store(row, v);
  }

  static void epilogueRows(float* c, int64_t ldc, int64_t h, int64_t w, float alpha, const float* bias, Act a, const float* res,
                           int64_t ldr) {
    if (a == Act::Tanh || a == Act::GeluTanh) {  // the exact scalar path of actRow, after the rest
      for (int64_t i = 0; i < h; ++i) {
        float* row = c + i * ldc;
        epilogueRows(row, ldc, 1, w, alpha, bias, Act::None, nullptr, 0);
        actRow(a, row, w);
        if (res)
          for (int64_t j = 0; j < w; ++j) row[j] += res[i * ldr + j];
      }
      return;
    }
    const bool scale = alpha != 1.0f;
    const vec va = V::set1(alpha);
    for (int64_t i = 0; i < h; ++i) {
      float* row = c + i * ldc;
      const float* r = res ? res + i * ldr : nullptr;
      int64_t j = 0;
      for (; j + W <= w; j += W) epilogueVec(row + j, bias ? bias + j : nullptr, r ? r + j : nullptr, Lanes(W), va, scale, a);
      if (j < w) epilogueVec(row + j, bias ? bias + j : nullptr, r ? r + j : nullptr, Lanes(w - j), va, scale, a);
    }
  }

  // F32 or F16 values as bf16 (nearest even, NaN quieted: floatToBf16's rule, bit for bit)
  static void toBf16(const void* src, DType dtype, int64_t n, uint16_t* dst) {
    if (dtype == DType::BF16) {
      std::memcpy(dst, src, (size_t)n * sizeof(uint16_t));
      return;
    }
    const bool half = dtype == DType::F16;
    for (int64_t i = 0; i < n; i += W) {
      const Lanes m(std::min<int64_t>(W, n - i));
      const vec f = half ? m.loadHalf(static_cast<const uint16_t*>(src) + i) : m.load(static_cast<const float*>(src) + i);
      V::storeBf16(dst + i, m, f);
    }
  }
};

}  // namespace
}  // namespace onestep
