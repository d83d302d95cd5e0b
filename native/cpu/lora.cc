#include "lora.h"

#include <map>
#include <vector>

#include "../../kernels/onestep_cuda_api.h"
#include "../backend/cuda_executor.h"
#include "../core/error.h"
#include "../graph/derived.h"
#include "gemm.h"
#include "thread_pool.h"

namespace onestep {

void checkLoraParts(const Shape& ws, DType baseDtype, const std::vector<LoraPart>& parts, const std::string& name) {
  check(ws.size() >= 2, "ERR_ONESTEP_LORA", "'", name, "': LoRA needs a 2-D or 4-D weight, got ", shapeString(ws));
  check(baseDtype != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': the weight is not a float tensor");
  const int64_t N = ws[0];
  const int64_t K = N > 0 ? shapeNumel(ws) / N : 0;
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
}

namespace {

// Fuses into `out` (W's shape, outDtype; checked), nothing else.
void fuseInto(const Tensor& base, const std::vector<LoraPart>& parts, Tensor& out) {
  const int64_t N = base.shape()[0];
  const int64_t K = N > 0 ? base.numel() / N : 0;
  // The float32 accumulator: the output itself when it is F32, else a scratch buffer.
  std::vector<float> scratch;
  float* w = nullptr;
  if (out.dtype() == DType::F32) {
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
  if (out.dtype() != DType::F32) {
    ThreadPool::global().parallelFor(total, 1 << 16, [&](int64_t b, int64_t e, int) { out.copyFromFloat32(b, e - b, w + b); });
  }
}

void checkInto(const Tensor& into, const Shape& ws, DType outDtype, const std::string& name) {
  check(into.dtype() == outDtype && into.shape() == ws, "ERR_ONESTEP_LORA", "'", name, "': the tensor to fuse into is ",
        dtypeName(into.dtype()), shapeString(into.shape()), ", expected ", dtypeName(outDtype), shapeString(ws));
}

}  // namespace

Tensor fuseLora(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType outDtype, Tensor* into) {
  const Shape& ws = base.shape();
  // inputs that are deferred fusions are read as what they define
  ensureHostFused(base);
  for (const LoraPart& p : parts) ensureHostFused(p.down), ensureHostFused(p.up);
  checkLoraParts(ws, base.dtype(), parts, name);
  check(outDtype != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': the fused weight must be F32, F16 or BF16");
  // Everything is checked before anything is written (into may hold the weights in use).
  Tensor out;
  if (into) {
    checkInto(*into, ws, outDtype, name);
    into->mutableData();  // throws for a read-only view
    out = *into;
  } else {
    out = Tensor::uninitialized(outDtype, ws);  // every element is written below
  }
  fuseInto(base, parts, out);
  if (into) forgetDerived(out.data());  // rewritten in place: its derived forms and GPU copies are stale
  return out;
}

// ---- deferred fusions ----

namespace {

struct DeferredFusion {
  std::weak_ptr<const void> owner;  // the host tensor's storage (the entry is dead once it expires)
  std::mutex mutex;                 // guards the three below (held briefly)
  std::shared_ptr<const LoraDefinition> definition;
  uint64_t hostVersion = 0;   // the definition's version the host bytes hold (0: none)
  bool hostEverRead = false;  // host bytes were made once: CPU plans may hold forms of them (sticky)
  std::mutex computing;       // serialises making the host bytes
};

struct Registry {
  std::mutex mutex;
  std::map<uintptr_t, std::shared_ptr<DeferredFusion>> entries;  // by the host tensor's data address
  uint64_t versions = 0;
  // dead entries go at once: their definitions hold the checkpoint's and the adapters' mappings
  void prune() {
    for (auto it = entries.begin(); it != entries.end();) it = it->second->owner.expired() ? entries.erase(it) : std::next(it);
  }
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed (read by threads at exit)
  return *r;
}

std::shared_ptr<DeferredFusion> entryOf(const void* data) {
  if (!data) return nullptr;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.entries.find((uintptr_t)data);
  if (it == r.entries.end()) return nullptr;
  if (it->second->owner.expired()) {  // freed (its address may be another tensor's now)
    r.entries.erase(it);
    return nullptr;
  }
  return it->second;
}

}  // namespace

void pruneDeferredFusions() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  r.prune();
}

DeferResult deferLoraFusion(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType hostDtype,
                            const Tensor* into) {
  const Shape& ws = base.shape();
  checkLoraParts(ws, base.dtype(), parts, name);
  check(hostDtype != DType::I64, "ERR_ONESTEP_LORA", "'", name, "': the fused weight must be F32, F16 or BF16");
  check(parts.size() <= (size_t)ONESTEP_CUDA_MAX_LORA_PARTS, "ERR_ONESTEP_LORA", "'", name, "': ", parts.size(),
        " adapters on one weight; the GPU fuses at most ", ONESTEP_CUDA_MAX_LORA_PARTS, " (ONESTEP_LORA_FUSION=cpu fuses any number)");
  // a definition reads host bytes as they are: never another deferred fusion's (nor its own)
  bool deferredInput = entryOf(base.data()) != nullptr;
  for (const LoraPart& p : parts) deferredInput = deferredInput || entryOf(p.down.data()) || entryOf(p.up.data());
  check(!deferredInput, "ERR_ONESTEP_LORA", "'", name, "': the base or a LoRA part is itself a deferred fusion");
  std::shared_ptr<DeferredFusion> entry;
  DeferResult result;
  if (into) {
    checkInto(*into, ws, hostDtype, name);
    entry = entryOf(into->data());
    check(entry != nullptr, "ERR_ONESTEP_LORA", "'", name, "': the tensor to fuse into is not a deferred fusion");
    result.tensor = *into;
  } else {
    result.tensor = Tensor::uninitialized(hostDtype, ws);  // written on first host read (ensureHostFused)
    entry = std::make_shared<DeferredFusion>();
    entry->owner = result.tensor.owner();
  }
  auto def = std::make_shared<LoraDefinition>();
  def->base = base;
  def->parts = parts;
  def->name = name;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    def->version = ++r.versions;
    if (!into) {
      r.prune();
      r.entries[(uintptr_t)result.tensor.data()] = entry;
    }
  }
  // the device copies first: if that fails, the definition in force is still the old one
  if (into) refuseDeviceCopies(into->data(), *def);
  {
    std::lock_guard<std::mutex> lock(entry->mutex);
    result.hostWasRead = entry->hostEverRead;
    entry->definition = def;  // the host bytes (hostVersion) are now stale: made again at the next read
  }
  if (result.hostWasRead) forgetDerivedOnHost(result.tensor.data());  // CPU forms of the old bytes
  return result;
}

std::shared_ptr<const LoraDefinition> deferredDefinition(const void* data) {
  auto e = entryOf(data);
  if (!e) return nullptr;
  std::lock_guard<std::mutex> lock(e->mutex);
  return e->definition;
}

void ensureHostFused(const Tensor& t) {
  auto e = entryOf(t.data());
  if (!e) return;
  std::lock_guard<std::mutex> computing(e->computing);
  std::shared_ptr<const LoraDefinition> def;
  {
    std::lock_guard<std::mutex> lock(e->mutex);
    if (e->hostVersion == e->definition->version) return;
    def = e->definition;
  }
  check(t.numel() == def->base.numel() && t.writable(), "ERR_ONESTEP_INTERNAL", "a view of the deferred fusion '", def->name,
        "' was read before the fusion itself");
  Tensor out = t;  // shares the storage
  fuseInto(def->base, def->parts, out);
  std::lock_guard<std::mutex> lock(e->mutex);
  e->hostVersion = def->version;
  e->hostEverRead = true;
}

}  // namespace onestep
