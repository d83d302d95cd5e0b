// Torch-compatible CPU generator (see torch_generator.h, docs/RNG.md).
//
// Floating-point discipline: every rounding step of PyTorch's kernels is spelled out as its own
// statement, and every fused multiply-add is an explicit std::fma / std::fmaf. No statement here
// has a product feeding an addition that a contracting compiler (-ffp-contract=fast) could fuse in
// a way that changes the result: the only such shapes are `x * y + 0`, whose fused and unfused
// results are identical.
#include "torch_generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/error.h"
#include "../core/half.h"

#if defined(__FAST_MATH__)
#error "torch_generator.cc needs IEEE arithmetic: do not compile it with -ffast-math"
#endif

namespace onestep {
namespace rng {

namespace {

constexpr int kN = TorchGenerator::kStateWords;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu;
constexpr uint32_t kUpperMask = 0x80000000u;
constexpr uint32_t kLowerMask = 0x7fffffffu;

// c10::pi<double>
constexpr double kPi = 3.14159265358979323846;

inline uint32_t twist(uint32_t u, uint32_t v) {
  const uint32_t mixed = (u & kUpperMask) | (v & kLowerMask);
  return (mixed >> 1) ^ ((v & 1u) ? kMatrixA : 0u);
}

// Uniform conversions (at::uniform_real_distribution, from 0 to 1).
inline float uniformFloatBits(uint32_t r) { return (float)(r & 0xFFFFFFu) * (1.0f / 16777216.0f); }
inline float uniformHalfBits(uint32_t r) { return (float)(r & 0x7FFu) * (1.0f / 2048.0f); }
inline double uniformDoubleBits(uint64_t r) {
  return (double)(r & ((1ULL << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// ---- the AVX2 kernel's math (avx_mathfun's log256_ps / sincos256_ps as PyTorch's build compiled
// them: the fused multiply-adds are where the compiler contracted the intrinsics) ----------------

inline float logAvx2(float x) {
  x = std::max(x, 1.17549435e-38f);  // min_norm_pos = 2^-126
  uint32_t bits = floatToBits(x);
  const int32_t exponent = (int32_t)(bits >> 23) - 127;
  float e = (float)exponent;
  e = e + 1.0f;
  bits = (bits & ~0x7f800000u) | floatToBits(0.5f);  // mantissa in [0.5, 1)
  float m = bitsToFloat(bits);
  if (m < 0.707106781186547524f) {
    e = e - 1.0f;
    const float t = m;
    m = m - 1.0f;
    m = m + t;
  } else {
    m = m - 1.0f;
    m = m + 0.0f;
  }
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = std::fmaf(y, m, -1.1514610310e-1f);
  y = std::fmaf(y, m, 1.1676998740e-1f);
  y = std::fmaf(y, m, -1.2420140846e-1f);
  y = std::fmaf(y, m, 1.4249322787e-1f);
  y = std::fmaf(y, m, -1.6668057665e-1f);
  y = std::fmaf(y, m, 2.0000714765e-1f);
  y = std::fmaf(y, m, -2.4999993993e-1f);
  y = std::fmaf(y, m, 3.3333331174e-1f);
  y = y * m;
  const float q1 = e * -2.12194440e-4f;
  y = std::fmaf(y, z, q1);
  y = std::fmaf(-z, 0.5f, y);
  const float r = m + y;
  return std::fmaf(e, 0.693359375f, r);
}

// x >= 0 (theta = 2*pi*u2).
inline void sincosAvx2(float x, float* sinOut, float* cosOut) {
  const float scaled = x * 1.27323954473516f;  // 4 / pi
  int32_t j = (int32_t)scaled;                  // truncation (cvttps2dq)
  j = (j + 1) & ~1;
  const float y = (float)j;
  x = std::fmaf(y, -0.78515625f, x);
  x = std::fmaf(y, -2.4187564849853515625e-4f, x);
  x = std::fmaf(y, -3.77489497744594108e-8f, x);
  const float z = x * x;

  float c = std::fmaf(std::fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f), z, 4.166664568298827e-2f);
  c = c * z;
  const float halfZ = z * 0.5f;
  c = std::fmaf(c, z, -halfZ);
  c = c + 1.0f;

  float s = std::fmaf(std::fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f), z, -1.6666654611e-1f);
  s = s * z;
  s = std::fmaf(s, x, x);

  float sinV, cosV;
  if ((j & 2) == 0) {
    sinV = s;
    cosV = c;
  } else {
    sinV = c;
    cosV = s;
  }
  // sign flips are bit flips (as in the SIMD code), so a zero can become -0 here
  if (j & 4) sinV = bitsToFloat(floatToBits(sinV) ^ 0x80000000u);
  if (((j - 2) & 4) == 0) cosV = bitsToFloat(floatToBits(cosV) ^ 0x80000000u);
  *sinOut = sinV;
  *cosOut = cosV;
}

// `* std + mean` with std = 1, mean = 0: only turns -0 into +0.
inline float affineUnit(float v) { return v + 0.0f; }
inline double affineUnit(double v) { return v + 0.0; }

}  // namespace

// ---- 16-element blocks ------------------------------------------------------------------------

void normalBlock16Generic(float* d) {
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float lg = std::log(u1);  // logf
    const float prod = -2.0f * lg;
    const float radius = std::sqrt(prod);
    const double thetaD = (2.0 * kPi) * (double)u2;
    const float theta = (float)thetaD;
    const float cs = std::cos(theta);  // cosf
    const float sn = std::sin(theta);  // sinf
    const float a = radius * cs;
    const float b = radius * sn;
    d[j] = affineUnit(a);
    d[j + 8] = affineUnit(b);
  }
}

void normalBlock16Avx2(float* d) {
  const float twoPi = (float)(2.0 * kPi);  // 6.2831855f: rounded to float first
  for (int j = 0; j < 8; ++j) {
    const float u1 = 1.0f - d[j];
    const float u2 = d[j + 8];
    const float lg = logAvx2(u1);
    const float prod = -2.0f * lg;
    const float radius = std::sqrt(prod);
    const float theta = twoPi * u2;
    float sn, cs;
    sincosAvx2(theta, &sn, &cs);
    const float a = radius * cs;
    const float b = radius * sn;
    d[j] = std::fmaf(a, 1.0f, 0.0f);
    d[j + 8] = std::fmaf(b, 1.0f, 0.0f);
  }
}

void normalBlock16Half(uint16_t* d) {
  for (int j = 0; j < 8; ++j) {
    const uint16_t u1 = floatToHalf(1.0f - halfToFloat(d[j]));
    const float u2 = halfToFloat(d[j + 8]);
    const float lg = std::log(halfToFloat(u1));  // logf
    const float prod = -2.0f * lg;
    const uint16_t radius = floatToHalf(std::sqrt(prod));
    const double thetaD = (2.0 * kPi) * (double)u2;
    const uint16_t theta = floatToHalf((float)thetaD);  // double -> float -> half
    const float thetaF = halfToFloat(theta);
    const float rF = halfToFloat(radius);
    const float cs = std::cos(thetaF);
    const float sn = std::sin(thetaF);
    const float a = rF * cs;
    const float b = rF * sn;
    d[j] = floatToHalf(affineUnit(a));
    d[j + 8] = floatToHalf(affineUnit(b));
  }
}

void normalBlock16Double(double* d) {
  for (int j = 0; j < 8; ++j) {
    const double u1 = 1.0 - d[j];
    const double u2 = d[j + 8];
    const double lg = std::log(u1);
    const double prod = -2.0 * lg;
    const double radius = std::sqrt(prod);
    const double theta = (2.0 * kPi) * u2;
    const double cs = std::cos(theta);
    const double sn = std::sin(theta);
    const double a = radius * cs;
    const double b = radius * sn;
    d[j] = affineUnit(a);
    d[j + 8] = affineUnit(b);
  }
}

// ---- engine -----------------------------------------------------------------------------------

TorchGenerator::TorchGenerator(uint64_t seed) { manualSeed(seed); }

void TorchGenerator::manualSeed(uint64_t seed) {
  seed_ = seed;
  seeded_ = true;
  state_[0] = (uint32_t)(seed & 0xffffffffu);
  for (int j = 1; j < kN; ++j) {
    const uint32_t prev = state_[j - 1];
    state_[j] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)j;
  }
  left_ = 1;
  next_ = 0;
  hasNextDoubleNormal_ = false;
  nextDoubleNormal_ = 0.0;
  hasNextFloatNormal_ = false;
  nextFloatNormal_ = 0.0f;
}

void TorchGenerator::nextState() {
  uint32_t* p = state_.data();
  left_ = kN;
  next_ = 0;
  for (int j = kN - kM + 1; --j; ++p) *p = p[kM] ^ twist(p[0], p[1]);
  for (int j = kM; --j; ++p) *p = p[kM - kN] ^ twist(p[0], p[1]);
  *p = p[kM - kN] ^ twist(p[0], state_[0]);
}

uint32_t TorchGenerator::random() {
  if (--left_ == 0) nextState();
  uint32_t y = state_[next_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= (y >> 18);
  return y;
}

uint64_t TorchGenerator::random64() {
  const uint32_t hi = random();
  const uint32_t lo = random();
  return ((uint64_t)hi << 32) | lo;
}

// ---- uniforms ---------------------------------------------------------------------------------

void TorchGenerator::randFloat(float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = uniformFloatBits(random());
}

void TorchGenerator::randHalf(uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = floatToHalf(uniformHalfBits(random()));
}

void TorchGenerator::randDouble(double* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = uniformDoubleBits(random64());
}

void TorchGenerator::randint(int64_t low, int64_t high, int64_t* out, size_t n) {
  if (!(low < high)) fail("ERR_ONESTEP_ARGUMENT", "randint: low (", low, ") must be less than high (", high, ")");
  const uint64_t range = (uint64_t)high - (uint64_t)low;  // exact in unsigned arithmetic
  const uint64_t base = (uint64_t)low;
  if (range >= (1ULL << 32)) {
    for (size_t i = 0; i < n; ++i) out[i] = (int64_t)(random64() % range + base);
  } else {
    for (size_t i = 0; i < n; ++i) out[i] = (int64_t)((uint64_t)random() % range + base);
  }
}

// ---- normals ----------------------------------------------------------------------------------

// at::normal_distribution<double> (PyTorch 1.13): angle from the first uniform, radius from the
// second (log(1 - u2); current PyTorch uses log1p(-u2)), the sine kept for the next call.
double TorchGenerator::normalDouble() {
  if (hasNextDoubleNormal_) {
    hasNextDoubleNormal_ = false;
    return affineUnit(nextDoubleNormal_);
  }
  const double u1 = uniformDoubleBits(random64());
  const double u2 = uniformDoubleBits(random64());
  const double lg = std::log(1.0 - u2);
  const double prod = -2.0 * lg;
  const double r = std::sqrt(prod);
  const double theta = (2.0 * kPi) * u1;
  const double sn = std::sin(theta);
  const double cs = std::cos(theta);
  nextDoubleNormal_ = r * sn;
  hasNextDoubleNormal_ = true;
  const double ret = r * cs;
  return affineUnit(ret);
}

void TorchGenerator::randnFloat(float* out, size_t n, NormalVariant variant) {
  if (n < 16) {
    for (size_t i = 0; i < n; ++i) out[i] = (float)normalDouble();
    return;
  }
  void (*block)(float*) = variant == NormalVariant::Avx2 ? normalBlock16Avx2 : normalBlock16Generic;
  randFloat(out, n);
  for (size_t i = 0; i + 16 <= n; i += 16) block(out + i);
  if (n % 16 != 0) {
    float* tail = out + n - 16;
    randFloat(tail, 16);
    block(tail);
  }
}

void TorchGenerator::randnHalf(uint16_t* out, size_t n) {
  if (n < 16) {
    for (size_t i = 0; i < n; ++i) out[i] = floatToHalf((float)normalDouble());  // double -> float -> half
    return;
  }
  randHalf(out, n);
  for (size_t i = 0; i + 16 <= n; i += 16) normalBlock16Half(out + i);
  if (n % 16 != 0) {
    uint16_t* tail = out + n - 16;
    randHalf(tail, 16);
    normalBlock16Half(tail);
  }
}

void TorchGenerator::randnDouble(double* out, size_t n) {
  if (n < 16) {
    for (size_t i = 0; i < n; ++i) out[i] = normalDouble();
    return;
  }
  randDouble(out, n);
  for (size_t i = 0; i + 16 <= n; i += 16) normalBlock16Double(out + i);
  if (n % 16 != 0) {
    double* tail = out + n - 16;
    randDouble(tail, 16);
    normalBlock16Double(tail);
  }
}

// ---- torch's state bytes (CPUGeneratorImplState, x86-64 / aarch64 layout) ---------------------

namespace {
constexpr size_t kOffSeed = 0;           // uint64 the_initial_seed
constexpr size_t kOffLeft = 8;           // int32 left
constexpr size_t kOffSeeded = 12;        // int32 seeded
constexpr size_t kOffNext = 16;          // uint64 next
constexpr size_t kOffState = 24;         // uint64 state[624]
constexpr size_t kOffNormalX = 5016;     // double normal_x (legacy: uniform of the cached pair)
constexpr size_t kOffNormalY = 5024;     // double normal_y (current: the cached sample)
constexpr size_t kOffNormalRho = 5032;   // double normal_rho (legacy: radius of the cached pair)
constexpr size_t kOffNormalValid = 5040; // int32 normal_is_valid
constexpr size_t kOffFloatSample = 5048; // float next_float_normal_sample
constexpr size_t kOffFloatValid = 5052;  // bool is_next_float_normal_sample_valid
static_assert(kOffState + 8 * TorchGenerator::kStateWords == kOffNormalX, "state layout");

template <typename T>
void put(std::vector<uint8_t>& b, size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}
template <typename T>
T get(const uint8_t* b, size_t off) {
  T v;
  std::memcpy(&v, b + off, sizeof(T));
  return v;
}
}  // namespace

std::vector<uint8_t> TorchGenerator::getState() const {
  std::vector<uint8_t> b(kTorchStateBytes, 0);
  put<uint64_t>(b, kOffSeed, seed_);
  put<int32_t>(b, kOffLeft, left_);
  put<int32_t>(b, kOffSeeded, seeded_ ? 1 : 0);
  put<uint64_t>(b, kOffNext, next_);
  for (int i = 0; i < kN; ++i) put<uint64_t>(b, kOffState + 8 * (size_t)i, state_[(size_t)i]);
  put<double>(b, kOffNormalX, 0.0);
  put<double>(b, kOffNormalY, hasNextDoubleNormal_ ? nextDoubleNormal_ : 0.0);
  put<double>(b, kOffNormalRho, 0.0);
  put<int32_t>(b, kOffNormalValid, hasNextDoubleNormal_ ? 1 : 0);
  put<float>(b, kOffFloatSample, hasNextFloatNormal_ ? nextFloatNormal_ : 0.0f);
  b[kOffFloatValid] = hasNextFloatNormal_ ? 1 : 0;
  return b;
}

void TorchGenerator::setState(const uint8_t* bytes, size_t size) {
  if (size != kTorchStateBytes && size != kTorchLegacyStateBytes)
    fail("ERR_ONESTEP_ARGUMENT", "generator state must be ", kTorchStateBytes, " bytes (or the legacy ",
         kTorchLegacyStateBytes, "), got ", size);
  const int32_t left = get<int32_t>(bytes, kOffLeft);
  const int32_t seeded = get<int32_t>(bytes, kOffSeeded);
  const uint64_t next = get<uint64_t>(bytes, kOffNext);
  // torch's mt19937::is_valid, plus left + next <= 625 so that no read can pass the state array
  // (every state the engine reaches satisfies it)
  if (seeded == 0 || left <= 0 || left > kN || next > (uint64_t)kN || (uint64_t)left + next > (uint64_t)kN + 1)
    fail("ERR_ONESTEP_ARGUMENT", "invalid mt19937 state (left ", left, ", next ", next, ", seeded ", seeded, ")");
  std::array<uint32_t, kN> st{};
  for (int i = 0; i < kN; ++i) st[(size_t)i] = (uint32_t)get<uint64_t>(bytes, kOffState + 8 * (size_t)i);

  bool hasDouble = false, hasFloat = false;
  double dbl = 0.0;
  float flt = 0.0f;
  const bool normalValid = get<int32_t>(bytes, kOffNormalValid) != 0;
  if (size == kTorchLegacyStateBytes) {
    if (normalValid) {
      const double r = get<double>(bytes, kOffNormalRho);
      const double theta = 2.0 * kPi * get<double>(bytes, kOffNormalX);
      dbl = r * std::sin(theta);
      hasDouble = true;
    }
  } else {
    if (bytes[kOffFloatValid] != 0) {
      hasFloat = true;
      flt = get<float>(bytes, kOffFloatSample);
    }
    if (normalValid) {
      hasDouble = true;
      dbl = get<double>(bytes, kOffNormalY);
    }
  }
  seed_ = get<uint64_t>(bytes, kOffSeed);
  left_ = left;
  seeded_ = true;
  next_ = (uint32_t)next;
  state_ = st;
  hasNextDoubleNormal_ = hasDouble;
  nextDoubleNormal_ = dbl;
  hasNextFloatNormal_ = hasFloat;
  nextFloatNormal_ = flt;
}

}  // namespace rng
}  // namespace onestep
