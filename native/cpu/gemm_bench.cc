// gemmBenchmark: the GEMM alone, for scripts/bench-gemm.js (against numpy / OpenBLAS).
#include <chrono>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"
#include "gemm.h"

namespace onestep {

double gemmBenchmark(int64_t M, int64_t N, int64_t K, DType dtype, double seconds, const std::string& schedule) {
  check(schedule == "packed" || schedule == "prepacked" || schedule == "bf16", "ERR_ONESTEP_ARGUMENT",
        "gemmBench: schedule must be 'packed', 'prepacked' or 'bf16', got '", schedule, "'");
  check(M > 0 && N > 0 && K > 0 && M * K < (1LL << 31) && N * K < (1LL << 31) && M * N < (1LL << 31), "ERR_ONESTEP_ARGUMENT",
        "gemmBench: sizes out of range");
  check(dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16, "ERR_ONESTEP_ARGUMENT", "gemmBench: B must be F32, F16 or BF16");
  check(seconds >= 0 && seconds <= 600, "ERR_ONESTEP_ARGUMENT", "gemmBench: seconds must be in [0, 600]");
  std::vector<float> a((size_t)(M * K)), c((size_t)(M * N));
  for (size_t i = 0; i < a.size(); ++i) a[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
  Tensor b = Tensor::empty(dtype, Shape{N, K});
  std::vector<float> bf((size_t)(N * K));
  for (size_t i = 0; i < bf.size(); ++i) bf[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
  b.copyFromFloat32(bf.data());
  GemmB gb;
  gb.data = b.data();
  gb.dtype = dtype;
  gb.ld = K;
  gb.nk = true;
  // the weight packed once, as a graph's plan does ('prepacked': the float32 kernel's panels,
  // 'bf16': bf16 panels and bf16 operands)
  Tensor packed;
  PrepackedB pb;
  if (schedule == "bf16") {
    check(gemmBf16KernelName() != nullptr, "ERR_ONESTEP_UNSUPPORTED", "gemmBench: this CPU has no bf16 kernel");
    packed = Tensor::uninitialized(DType::BF16, Shape{(int64_t)gemmPrepackBf16Elems(K, N)});
    gemmPrepackBf16(gb, K, N, reinterpret_cast<uint16_t*>(packed.mutableData()));
    pb = PrepackedB{packed.data(), DType::BF16, K, N, 0};
  } else if (schedule == "prepacked") {
    const DType as = gemmPrepackDtype(dtype);
    check(as != DType::I64, "ERR_ONESTEP_ARGUMENT", "gemmBench: ", dtypeName(dtype), " weights are not prepacked by this kernel");
    packed = Tensor::uninitialized(as, Shape{(int64_t)gemmPrepackElems(K, N)});
    gemmPrepackB(gb, K, N, as, packed.mutableData());
    pb = PrepackedB{packed.data(), as, K, N, gemmPrepackKernel()};
  }
  GemmA ga;
  ga.data = a.data();
  ga.ld = K;
  auto once = [&] {
    if (schedule == "packed") gemm(M, N, K, a.data(), K, gb, c.data(), N, GemmEpilogue{});
    else gemmPrepacked(M, ga, pb, c.data(), N, GemmEpilogue{});
  };
  once();  // warm up
  int iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    once();
    ++iters;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  return 2.0 * (double)M * (double)N * (double)K * iters / elapsed / 1e9;
}

}  // namespace onestep
