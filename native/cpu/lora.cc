#include "lora.h"

#include <vector>

#include "../graph/derived.h"
#include "../core/error.h"
#include "gemm.h"
#include "thread_pool.h"

namespace onestep {

Tensor fuseLora(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType outDtype, Tensor* into) {
  const Shape& ws = base.shape();
  check(ws.size() >= 2, "ERR_ONESTEP_LORA", "'", name, "': LoRA needs a 2-D or 4-D weight, got ", shapeString(ws));
  check(base.dtype() != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': the weight is not a float tensor");
  check(outDtype != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': the fused weight must be F32, F16 or BF16");
  const int64_t N = ws[0];
  const int64_t K = N > 0 ? base.numel() / N : 0;
  // Everything is checked before anything is written (into may hold the weights in use).
  for (const LoraPart& p : parts) {
    const Shape &ds = p.down.shape(), &us = p.up.shape();
    check(ds.size() >= 2 && us.size() >= 2, "ERR_ONESTEP_LORA", "'", name, "': LoRA tensors must be 2-D or 4-D");
    const int64_t r = ds[0];
    check(r > 0 && p.down.numel() / r == K && p.down.numel() == r * K, "ERR_ONESTEP_LORA", "'", name, "': down ", shapeString(ds),
          " does not match the weight ", shapeString(ws));
    check(us[0] == N && us[1] == r && p.up.numel() == N * r, "ERR_ONESTEP_LORA", "'", name, "': up ", shapeString(us), " must be [", N,
          ", ", r, "] (or [", N, ", ", r, ", 1, 1]) for down ", shapeString(ds));
    check(p.down.dtype() != DType::I64 && p.up.dtype() != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': LoRA tensors must be float");
  }
  Tensor out;
  if (into) {
    check(into->dtype() == outDtype && into->shape() == ws, "ERR_ONESTEP_LORA", "'", name, "': the tensor to fuse into is ",
          dtypeName(into->dtype()), shapeString(into->shape()), ", expected ", dtypeName(outDtype), shapeString(ws));
    into->mutableData();  // throws for a read-only view
    out = *into;
  } else {
    out = Tensor::uninitialized(outDtype, ws);  // every element is written below
  }
  // The float32 accumulator: the output itself when it is F32, else a scratch buffer.
  std::vector<float> scratch;
  float* w = nullptr;
  if (outDtype == DType::F32) {
    w = reinterpret_cast<float*>(out.mutableData());
  } else {
    scratch.resize((size_t)base.numel());
    w = scratch.data();
  }
  const int64_t total = base.numel();
  ThreadPool::global().parallelFor(total, 1 << 16, [&](int64_t b, int64_t e, int) { base.copyToFloat32(b, e - b, w + b); });
  for (const LoraPart& p : parts) {
    const int64_t r = p.down.shape()[0];
    std::vector<float> u((size_t)(N * r));
    p.up.copyToFloat32(u.data());
    GemmB b;
    b.data = p.down.data();
    b.dtype = p.down.dtype();
    b.ld = K;
    b.nk = false;  // down is [r][K] = B stored [K=r rows][N=K cols]
    GemmEpilogue ep;
    ep.alpha = p.factor;
    ep.accumulate = true;
    gemm(N, K, r, u.data(), r, b, w, K, ep);
  }
  if (outDtype != DType::F32) {
    ThreadPool::global().parallelFor(total, 1 << 16, [&](int64_t b, int64_t e, int) { out.copyFromFloat32(b, e - b, w + b); });
  }
  if (into) forgetDerived(out.data());  // rewritten in place: its derived forms and GPU copies are stale
  return out;
}

}  // namespace onestep
