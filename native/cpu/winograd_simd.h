// The Winograd tile transforms (winograd.h's WinogradKernels: F(2x2, 3x3) and F(4x4, 3x3), the
// bf16 input transform), written once over a vector type: channels go W at a time, one vector per
// tile position.
//
// Included by one file per ISA (winograd_avx512.cc, winograd_avx2.cc) inside its
// ONESTEP_SIMD_BEGIN / END, after the standard headers below (so that no library code is first
// compiled for the ISA): everything here has internal linkage, so each file's copy is compiled
// for its own ISA. V supplies (static, inline):
//   using vec; W (lanes); zero(); set1(x); add, sub, mul (a op b); fmadd(a, b, c) (a * b + c);
//   fnmadd(a, b, c) (c - a * b); storeAligned(p, v) / loadAligned(p) (a W-float buffer);
//   Lanes(n) (lanes [0, n), n <= W) with load(p) (zeros past n, nothing read there), store(p, v)
//   (nothing written past n), n; storeBf16(dst, lanes, v) (v rounded to bf16 as floatToBf16).
// The file's table: constexpr WinogradKernels k = {"isa", WinogradSimd<V>::input, ...} (constant
// initialisation: no code of the ISA runs before the CPU is checked).
#pragma once

#include <algorithm>
#include <cstdint>

#include "winograd.h"
#include "vecmath.h"

namespace onestep {
namespace {

template <typename V>
struct WinogradSimd {
  using vec = typename V::vec;
  using Lanes = typename V::Lanes;

  // V = B^T d B for the channels of a tile: d[i * 4 + j] the input pixel (i, j) -> v[i * 4 + j]
  static void transformTile(const vec* d, vec* v) {
    vec t[16];
    for (int j = 0; j < 4; ++j) {
      t[0 * 4 + j] = V::sub(d[0 * 4 + j], d[2 * 4 + j]);
      t[1 * 4 + j] = V::add(d[1 * 4 + j], d[2 * 4 + j]);
      t[2 * 4 + j] = V::sub(d[2 * 4 + j], d[1 * 4 + j]);
      t[3 * 4 + j] = V::sub(d[1 * 4 + j], d[3 * 4 + j]);
    }
    for (int i = 0; i < 4; ++i) {
      v[i * 4 + 0] = V::sub(t[i * 4 + 0], t[i * 4 + 2]);
      v[i * 4 + 1] = V::add(t[i * 4 + 1], t[i * 4 + 2]);
      v[i * 4 + 2] = V::sub(t[i * 4 + 2], t[i * 4 + 1]);
      v[i * 4 + 3] = V::sub(t[i * 4 + 1], t[i * 4 + 3]);
    }
  }

  // the channels [c, c + lanes) of each of the tile's 16 input pixels (zeros for padding)
  static void loadTile(const float* const* src, int64_t c, Lanes m, vec* d) {
    for (int x = 0; x < 16; ++x) d[x] = src[x] ? m.load(src[x] + c) : V::zero();
  }

  static void input(const float* const* src, int64_t C, float* dst, int64_t stride) {
    for (int64_t c = 0; c < C; c += V::W) {
      const Lanes m(std::min<int64_t>(V::W, C - c));
      vec d[16], v[16];
      loadTile(src, c, m, d);
      transformTile(d, v);
      for (int x = 0; x < 16; ++x) m.store(dst + x * stride + c, v[x]);
    }
  }

  static void inputBf16(const float* const* src, int64_t C, uint16_t* dst, int64_t xiStride, int64_t block, int64_t blockStride) {
    for (int64_t c = 0; c < C; c += V::W) {  // W channels never straddle a block (a multiple of 32)
      const Lanes m(std::min<int64_t>(V::W, C - c));
      uint16_t* out = dst + (c / block) * blockStride + c % block;
      vec d[16], v[16];
      loadTile(src, c, m, d);
      transformTile(d, v);
      for (int x = 0; x < 16; ++x) V::storeBf16(out + x * xiStride, m, v[x]);
    }
  }

  static void output(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out, const float* const* res) {
    alignas(64) float buf[4][V::W];
    for (int64_t c = 0; c < Co; c += V::W) {
      const Lanes m(std::min<int64_t>(V::W, Co - c));
      vec v[16];
      for (int x = 0; x < 16; ++x) v[x] = m.load(mm + x * stride + c);
      vec t[8];
      for (int j = 0; j < 4; ++j) {
        t[j] = V::add(V::add(v[j], v[4 + j]), v[8 + j]);
        t[4 + j] = V::sub(V::sub(v[4 + j], v[8 + j]), v[12 + j]);
      }
      const vec b = bias ? m.load(bias + c) : V::zero();
      vec y[4];
      for (int i = 0; i < 2; ++i) {
        y[i * 2] = V::add(V::add(V::add(t[i * 4], t[i * 4 + 1]), t[i * 4 + 2]), b);
        y[i * 2 + 1] = V::add(V::sub(V::sub(t[i * 4 + 1], t[i * 4 + 2]), t[i * 4 + 3]), b);
      }
      for (int p = 0; p < 4; ++p) {
        if (!out[p]) continue;
        if (act != Act::None) {
          V::storeAligned(buf[p], y[p]);
          applyActRow(act, buf[p], m.n);
          y[p] = V::loadAligned(buf[p]);
        }
        if (res[p]) y[p] = V::add(y[p], m.load(res[p] + c));
        m.store(out[p] + c, y[p]);
      }
    }
  }

  // F(4x4, 3x3): t = B^T d along one axis (d(i), t(i, v): winograd.h's B^T)
  template <typename In, typename Out>
  static void btRow43(In d, Out t) {
    const vec four = V::set1(4.0f), five = V::set1(5.0f), mfour = V::set1(-4.0f), two = V::set1(2.0f);
    const vec a = V::fmadd(mfour, d(2), d(4)), b = V::fmadd(mfour, d(1), d(3));
    const vec c = V::sub(d(4), d(2)), e = V::mul(two, V::sub(d(3), d(1)));
    t(0, V::fmadd(four, d(0), V::fnmadd(five, d(2), d(4))));
    t(1, V::add(a, b));
    t(2, V::sub(a, b));
    t(3, V::add(c, e));
    t(4, V::sub(c, e));
    t(5, V::fmadd(four, d(1), V::fnmadd(five, d(3), d(5))));
  }

  static void input43(const float* const* src, int64_t C, float* dst, int64_t stride) {
    for (int64_t c = 0; c < C; c += V::W) {
      const Lanes m(std::min<int64_t>(V::W, C - c));
      vec d[36], t[36];
      for (int x = 0; x < 36; ++x) d[x] = src[x] ? m.load(src[x] + c) : V::zero();
      for (int j = 0; j < 6; ++j) btRow43([&](int i) { return d[i * 6 + j]; }, [&](int i, vec v) { t[i * 6 + j] = v; });
      for (int i = 0; i < 6; ++i)
        btRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, vec v) { m.store(dst + (i * 6 + j) * stride + c, v); });
    }
  }

  // y = A^T m along one axis: 6 values -> 4 (winograd.h's A^T)
  template <typename In, typename Out>
  static void atRow43(In v, Out y) {
    const vec s12 = V::add(v(1), v(2)), d12 = V::sub(v(1), v(2));
    const vec s34 = V::add(v(3), v(4)), d34 = V::sub(v(3), v(4));
    y(0, V::add(V::add(v(0), s12), s34));
    y(1, V::fmadd(V::set1(2.0f), d34, d12));
    y(2, V::fmadd(V::set1(4.0f), s34, s12));
    y(3, V::add(V::fmadd(V::set1(8.0f), d34, d12), v(5)));
  }

  static void output43(const float* mm, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                       const float* const* res) {
    alignas(64) float buf[V::W];
    for (int64_t c = 0; c < Co; c += V::W) {
      const Lanes m(std::min<int64_t>(V::W, Co - c));
      vec t[24], y[16];
      for (int j = 0; j < 6; ++j)
        atRow43([&](int i) { return m.load(mm + (i * 6 + j) * stride + c); }, [&](int i, vec v) { t[i * 6 + j] = v; });
      const vec b = bias ? m.load(bias + c) : V::zero();
      for (int i = 0; i < 4; ++i) atRow43([&](int j) { return t[i * 6 + j]; }, [&](int j, vec v) { y[i * 4 + j] = V::add(v, b); });
      for (int p = 0; p < 16; ++p) {
        if (!out[p]) continue;
        vec r = y[p];
        if (act != Act::None) {
          V::storeAligned(buf, r);
          applyActRow(act, buf, m.n);
          r = V::loadAligned(buf);
        }
        if (res[p]) r = V::add(r, m.load(res[p] + c));
        m.store(out[p] + c, r);
      }
    }
  }
};

}  // namespace
}  // namespace onestep
