// gemmBenchmark: the GEMM alone, for scripts/bench-gemm.js (against numpy / OpenBLAS).
#include <chrono>
#include <vector>

#include "../core/error.h"
#include "../core/tensor.h"
#include "gemm.h"

namespace onestep {

double gemmBenchmark(int64_t M, int64_t N, int64_t K, DType dtype, double seconds) {
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
  gemm(M, N, K, a.data(), K, gb, c.data(), N, GemmEpilogue{});  // warm up
  int iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    gemm(M, N, K, a.data(), K, gb, c.data(), N, GemmEpilogue{});
    ++iters;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < seconds);
  return 2.0 * (double)M * (double)N * (double)K * iters / elapsed / 1e9;
}

}  // namespace onestep
