#include "winograd.h"

#include <algorithm>
#include <cstring>

#include <vector>

#include "../core/error.h"
#include "../core/half.h"
#include "gemm.h"
#include "cpu_info.h"
#include "thread_pool.h"
#include "vecmath.h"

namespace onestep {

namespace {

void inputGeneric(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; ++c) {
    float d[4][4];
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) d[i][j] = src[i * 4 + j] ? src[i * 4 + j][c] : 0.0f;
    // rows: B^T d
    float t[4][4];
    for (int j = 0; j < 4; ++j) {
      t[0][j] = d[0][j] - d[2][j];
      t[1][j] = d[1][j] + d[2][j];
      t[2][j] = d[2][j] - d[1][j];
      t[3][j] = d[1][j] - d[3][j];
    }
    // columns: (B^T d) B
    for (int i = 0; i < 4; ++i) {
      dst[(i * 4 + 0) * stride + c] = t[i][0] - t[i][2];
      dst[(i * 4 + 1) * stride + c] = t[i][1] + t[i][2];
      dst[(i * 4 + 2) * stride + c] = t[i][2] - t[i][1];
      dst[(i * 4 + 3) * stride + c] = t[i][1] - t[i][3];
    }
  }
}

void inputBf16Generic(const float* const* src, int64_t C, uint16_t* dst, int64_t xiStride, int64_t block, int64_t blockStride) {
  float v[16];
  for (int64_t c = 0; c < C; ++c) {
    const float* one[16];
    for (int x = 0; x < 16; ++x) one[x] = src[x] ? src[x] + c : nullptr;
    inputGeneric(one, 1, v, 1);
    for (int x = 0; x < 16; ++x) dst[x * xiStride + (c / block) * blockStride + c % block] = floatToBf16(v[x]);
  }
}

void outputGeneric(const float* m, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                   const float* const* res) {
  for (int64_t c = 0; c < Co; ++c) {
    float v[4][4];
    for (int x = 0; x < 16; ++x) v[x / 4][x % 4] = m[x * stride + c];
    // A^T M: 2 x 4
    float t[2][4];
    for (int j = 0; j < 4; ++j) {
      t[0][j] = v[0][j] + v[1][j] + v[2][j];
      t[1][j] = v[1][j] - v[2][j] - v[3][j];
    }
    const float b = bias ? bias[c] : 0.0f;
    for (int i = 0; i < 2; ++i) {
      const float y0 = t[i][0] + t[i][1] + t[i][2] + b;
      const float y1 = t[i][1] - t[i][2] - t[i][3] + b;
      if (out[i * 2]) out[i * 2][c] = applyAct(act, y0) + (res[i * 2] ? res[i * 2][c] : 0.0f);
      if (out[i * 2 + 1]) out[i * 2 + 1][c] = applyAct(act, y1) + (res[i * 2 + 1] ? res[i * 2 + 1][c] : 0.0f);
    }
  }
}

// F(4x4, 3x3): t = B^T d along one axis (d(i) reads the 6 values, t(i, v) writes them), in the
// AVX-512 code's order of operations
template <typename In, typename Out>
inline void btRow43(In d, Out t) {
  const float a = d(4) - 4.0f * d(2), b = d(3) - 4.0f * d(1), c = d(4) - d(2), e = 2.0f * (d(3) - d(1));
  t(0, 4.0f * d(0) - 5.0f * d(2) + d(4));
  t(1, a + b);
  t(2, a - b);
  t(3, c + e);
  t(4, c - e);
  t(5, 4.0f * d(1) - 5.0f * d(3) + d(5));
}

void input43Generic(const float* const* src, int64_t C, float* dst, int64_t stride) {
  for (int64_t c = 0; c < C; ++c) {
    float d[6][6], t[6][6];
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 6; ++j) d[i][j] = src[i * 6 + j] ? src[i * 6 + j][c] : 0.0f;
    for (int j = 0; j < 6; ++j)  // rows: B^T d
      btRow43([&](int i) { return d[i][j]; }, [&](int i, float v) { t[i][j] = v; });
    for (int i = 0; i < 6; ++i)  // columns: (B^T d) B
      btRow43([&](int j) { return t[i][j]; }, [&](int j, float v) { dst[(i * 6 + j) * stride + c] = v; });
  }
}

// y = A^T m along one axis: 6 values -> 4
template <typename In, typename Out>
inline void atRow43(In m, Out y) {
  const float s12 = m(1) + m(2), d12 = m(1) - m(2), s34 = m(3) + m(4), d34 = m(3) - m(4);
  y(0, m(0) + s12 + s34);
  y(1, d12 + 2.0f * d34);
  y(2, s12 + 4.0f * s34);
  y(3, d12 + 8.0f * d34 + m(5));
}

void output43Generic(const float* m, int64_t stride, int64_t Co, const float* bias, Act act, float* const* out,
                     const float* const* res) {
  for (int64_t c = 0; c < Co; ++c) {
    float t[4][6];
    for (int j = 0; j < 6; ++j) atRow43([&](int i) { return m[(i * 6 + j) * stride + c]; }, [&](int i, float v) { t[i][j] = v; });
    const float b = bias ? bias[c] : 0.0f;
    for (int i = 0; i < 4; ++i)
      atRow43([&](int j) { return t[i][j]; }, [&](int j, float v) {
        if (out[i * 4 + j]) out[i * 4 + j][c] = applyAct(act, v + b) + (res[i * 4 + j] ? res[i * 4 + j][c] : 0.0f);
      });
  }
}

const WinogradKernels kGeneric = {"generic", inputGeneric, outputGeneric, inputBf16Generic, input43Generic, output43Generic};

}  // namespace

const WinogradKernels& winogradKernels() {
  static const WinogradKernels* k = [] {

    if (simdAllowed() && cpuHas("avx512f") && winogradKernelsAvx512()) return winogradKernelsAvx512();
    if (simdAllowed() && cpuHas("avx2") && cpuHas("fma") && winogradKernelsAvx2()) return winogradKernelsAvx2();
    return &kGeneric;
  }();
  return *k;
}

namespace {

void checkKernel3x3(const Shape& s) {
  check(s.size() == 4 && s[2] == 3 && s[3] == 3, "ERR_ONESTEP_INTERNAL", "Winograd weights need a 3x3 kernel [Co, Ci, 3, 3], got ",
        shapeString(s));
}

// U = G g G^T of one 3x3 kernel k (row-major), computed in double as (G g) G^T: u[i * n + j],
// n = tile + 2. F(2x2, 3x3): G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]];
// F(4x4, 3x3): winograd.h
void transformKernel(const float* k, float* u, int tile) {
  static const double G2[6][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static const double G4[6][3] = {{0.25, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  const double(*G)[3] = tile == 4 ? G4 : G2;
  const int n = tile + 2;
  double t[6][3];  // G g
  for (int i = 0; i < n; ++i)
    for (int x = 0; x < 3; ++x) t[i][x] = G[i][0] * (double)k[x] + G[i][1] * (double)k[3 + x] + G[i][2] * (double)k[6 + x];
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) u[i * n + j] = (float)(t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
}

}  // namespace

Tensor winogradWeight(const Tensor& w) {
  const Shape& s = w.shape();
  checkKernel3x3(s);
  const int64_t Co = s[0], Ci = s[1];
  Tensor out = Tensor::uninitialized(DType::F32, Shape{16, Co, Ci});
  float* u = reinterpret_cast<float*>(out.mutableData());
  ThreadPool::global().parallelFor(Co, 1, [&](int64_t begin, int64_t end, int) {
    std::vector<float> g((size_t)(Ci * 9));
    float v[16];
    for (int64_t o = begin; o < end; ++o) {
      w.copyToFloat32(o * Ci * 9, Ci * 9, g.data());
      for (int64_t c = 0; c < Ci; ++c) {
        transformKernel(g.data() + c * 9, v, 2);
        for (int xi = 0; xi < 16; ++xi) u[((int64_t)xi * Co + o) * Ci + c] = v[xi];
      }
    }
  });
  return out;
}

int64_t winogradF32Stride(int64_t Co, int64_t Ci, int kernel) { return ((int64_t)gemmPrepackElems(Ci, Co, kernel) + 15) / 16 * 16; }

Tensor winogradWeightPrepacked(const Tensor& w, int tile) {
  const Shape& s = w.shape();
  checkKernel3x3(s);
  check(tile == 2 || tile == 4, "ERR_ONESTEP_INTERNAL", "Winograd tiles are 2x2 or 4x4, got ", tile);
  const int nx = (tile + 2) * (tile + 2);
  const int64_t Co = s[0], Ci = s[1], nr = gemmPrepackPanelWidth(), stride = winogradF32Stride(Co, Ci, gemmPrepackKernel());
  Tensor out = Tensor::uninitialized(DType::F32, Shape{nx, stride});
  float* packed = reinterpret_cast<float*>(out.mutableData());
  // one panel of output channels at a time: its nx matrices [nr][Ci] made, then packed into place
  ThreadPool::global().parallelFor((Co + nr - 1) / nr, 1, [&](int64_t begin, int64_t end, int) {
    std::vector<float> g((size_t)(nr * Ci * 9)), u((size_t)(nx * nr * Ci));
    float v[36], runs[36 * 16];
    for (int64_t p = begin; p < end; ++p) {
      const int64_t o0 = p * nr, width = std::min(nr, Co - o0);
      w.copyToFloat32(o0 * Ci * 9, width * Ci * 9, g.data());
      // 16 input channels at a time, gathered per matrix in L1 and written as runs (one value
      // at a time into nx matrices a panel apart missed the cache on every store)
      for (int64_t o = 0; o < width; ++o)
        for (int64_t c0 = 0; c0 < Ci; c0 += 16) {
          const int64_t cn = std::min<int64_t>(16, Ci - c0);
          for (int64_t cc = 0; cc < cn; ++cc) {
            transformKernel(g.data() + (o * Ci + c0 + cc) * 9, v, tile);
            for (int xi = 0; xi < nx; ++xi) runs[xi * 16 + cc] = v[xi];
          }
          for (int xi = 0; xi < nx; ++xi) std::memcpy(u.data() + ((size_t)xi * nr + o) * Ci + c0, runs + xi * 16, (size_t)cn * sizeof(float));
        }
      for (int xi = 0; xi < nx; ++xi) {
        GemmB b;
        b.data = u.data() + (size_t)xi * nr * Ci;
        b.dtype = DType::F32;
        b.ld = Ci;
        b.nk = true;
        gemmPrepackBColumns(b, Ci, Co, o0, width, packed + xi * stride);
      }
    }
  });
  return out;
}

int64_t winogradBf16Stride(int64_t Co, int64_t Ci) { return ((int64_t)gemmPrepackBf16Elems(Ci, Co) + 31) / 32 * 32; }

Tensor winogradWeightBf16(const Tensor& w) {
  const Tensor u = winogradWeight(w);
  const int64_t Co = w.shape()[0], Ci = w.shape()[1], stride = winogradBf16Stride(Co, Ci);
  Tensor out = Tensor::uninitialized(DType::BF16, Shape{16, stride});
  for (int64_t xi = 0; xi < 16; ++xi) {
    GemmB g;
    g.data = reinterpret_cast<const float*>(u.data()) + xi * Co * Ci;
    g.dtype = DType::F32;
    g.ld = Ci;
    g.nk = true;
    gemmPrepackBf16(g, Ci, Co, reinterpret_cast<uint16_t*>(out.mutableData()) + xi * stride);
  }
  return out;
}

}  // namespace onestep
