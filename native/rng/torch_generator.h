// Torch-compatible CPU random number generator: reproduces torch.Generator('cpu') (PyTorch 1.13's
// CPUGeneratorImpl) bit for bit — the mt19937 engine and its seeding, the uniform conversions of
// torch.rand / torch.randint, and torch.randn's two paths (the 16-element Box-Muller blocks for
// tensors of >= 16 elements, in the "generic" or the "avx2" kernel's arithmetic, and the double
// Box-Muller with a cached sample for smaller tensors). See docs/RNG.md and the fixtures' README,
// section 3. No N-API here; native/napi/js_generator.cc is the JS glue.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace onestep {
namespace rng {

// Which CPU kernel's arithmetic randn's >= 16-element float32 path reproduces. Only that path
// differs between them (float16, float64 and tensors < 16 elements are capability-independent).
enum class NormalVariant {
  Generic,  // PyTorch's default (non-SIMD) kernels: glibc logf / cosf / sinf in float
  Avx2,     // PyTorch's AVX2 kernels: Cephes-style polynomials with fused multiply-adds
};

// torch.Generator('cpu'). Not thread-safe (one generator per caller, as in torch).
class TorchGenerator {
 public:
  static constexpr int kStateWords = 624;
  // torch's default CPU seed (c10::default_rng_seed_val)
  static constexpr uint64_t kDefaultSeed = 67280421310721ULL;
  // Size of torch.Generator.get_state() for a CPU generator (CPUGeneratorImplState).
  static constexpr size_t kTorchStateBytes = 5056;
  // The legacy layout (CPUGeneratorImplStateLegacy) that set_state also accepts.
  static constexpr size_t kTorchLegacyStateBytes = 5048;

  explicit TorchGenerator(uint64_t seed = kDefaultSeed);

  // torch.Generator.manual_seed: only the low 32 bits initialise the engine; initialSeed() keeps
  // all 64. Clears the cached normal sample.
  void manualSeed(uint64_t seed);
  uint64_t initialSeed() const { return seed_; }

  // Engine outputs: random() = next 32-bit output; random64() = (first << 32) | second.
  uint32_t random();
  uint64_t random64();

  // torch.rand: uniforms in [0, 1), row-major, one engine output per float / half value
  // (24 / 11 random bits), two per double (53 bits). Half results are float16 bit patterns.
  void randFloat(float* out, size_t n);
  void randHalf(uint16_t* out, size_t n);
  void randDouble(double* out, size_t n);

  // torch.randint(low, high): low + random() % (high - low) when the range is below 2^32,
  // else low + random64() % range. Requires low < high (throws ERR_ONESTEP_ARGUMENT otherwise).
  void randint(int64_t low, int64_t high, int64_t* out, size_t n);

  // torch.randn for a contiguous tensor of n elements. Half results are float16 bit patterns.
  void randnFloat(float* out, size_t n, NormalVariant variant);
  void randnHalf(uint16_t* out, size_t n);
  void randnDouble(double* out, size_t n);

  // The cached second Box-Muller sample of the < 16-element path.
  bool hasCachedNormal() const { return hasNextDoubleNormal_; }

  // torch.Generator.get_state() / set_state(): the same 5056 bytes (little-endian x86-64 layout),
  // so a state can travel between torch and this generator. setState accepts 5056 or the legacy
  // 5048 bytes and throws ERR_ONESTEP_ARGUMENT on a wrong size or an invalid engine state.
  std::vector<uint8_t> getState() const;
  void setState(const uint8_t* bytes, size_t size);

 private:
  void nextState();
  double normalDouble();  // the < 16-element path's sample (cached partner used first)

  // at::mt19937_data_pod
  uint64_t seed_ = 0;
  int left_ = 1;
  bool seeded_ = false;
  uint32_t next_ = 0;
  std::array<uint32_t, kStateWords> state_{};
  // CPUGeneratorImpl's cached normal samples
  bool hasNextDoubleNormal_ = false;
  double nextDoubleNormal_ = 0.0;
  bool hasNextFloatNormal_ = false;  // kept only for get/set_state round trips
  float nextFloatNormal_ = 0.0f;
};

// The transforms of one 16-element block (exposed for tests): d[j], d[j+8] hold uniforms on entry.
void normalBlock16Generic(float* d);
void normalBlock16Avx2(float* d);
void normalBlock16Half(uint16_t* d);
void normalBlock16Double(double* d);

}  // namespace rng
}  // namespace onestep
