// LoRA fusion: W' = W + sum_i factor_i * up_i @ down_i, in float32, rounded once to the output
// dtype. up [N, r] (or [N, r, 1, 1]), down [r, K...] with K the product of W's trailing dims.
//
// Two ways to get W': fuseLora computes it on the CPU now; deferLoraFusion only records its
// definition (base, parts, factors) on a host tensor, whose consumers then make it where they read
// it: the CUDA backend fuses on the device when it uploads the weight, and re-fuses its copies in
// place when the definition changes (a LoRA scale change takes a kernel per weight, no re-upload and
// no graph rebuild); a host reader (a CPU node, toFloat32 from JS) gets the host bytes computed by
// fuseLora on first read (ensureHostFused).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace onestep {

struct LoraPart {
  Tensor down;
  Tensor up;
  float factor;
};

// Throws ERR_ONESTEP_LORA naming `name` when the parts do not fit a weight of shape `ws` (or are
// not float tensors).
void checkLoraParts(const Shape& ws, DType baseDtype, const std::vector<LoraPart>& parts, const std::string& name);

// Returns a new owned tensor of W's shape in `outDtype` (a float dtype), or writes into `into`
// (a writable tensor of W's shape and dtype `outDtype`, e.g. the previous fusion) and returns it.
// Throws ERR_ONESTEP_LORA on mismatched shapes, before writing anything.
Tensor fuseLora(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType outDtype,
                Tensor* into = nullptr);

// The definition of a deferred fusion (immutable once published; a change publishes a new one).
struct LoraDefinition {
  Tensor base;
  std::vector<LoraPart> parts;
  std::string name;
  uint64_t version = 0;
};

struct DeferResult {
  Tensor tensor;
  // host bytes had been made at some point (a CPU plan may hold forms derived from them): graphs
  // that read it must be rebuilt
  bool hostWasRead = false;
};

// Records W' = fuse(base, parts) on an owned host tensor of W's shape in `hostDtype` (a new one, or
// `into`, a tensor returned by an earlier call, whose definition is replaced): checked as fuseLora
// checks (and: at most ONESTEP_CUDA_MAX_LORA_PARTS parts, no input that is itself deferred), nothing
// computed on the host. Device copies of `into` are re-fused in place first (refuseDeviceCopies; if
// that throws, the old definition stays in force). The caller serialises a re-definition with runs
// and compilations of graphs that read the tensor (pipelines do: one queue).
DeferResult deferLoraFusion(const Tensor& base, const std::vector<LoraPart>& parts, const std::string& name, DType hostDtype,
                            const Tensor* into = nullptr);

// The definition behind a deferred tensor's data, or null for any other tensor.
std::shared_ptr<const LoraDefinition> deferredDefinition(const void* data);

// Computes the host bytes of a deferred tensor if they do not hold its definition yet; no-op for
// any other tensor. Thread-safe. Every host reader of constants calls it first (CpuPlan, JS readers).
void ensureHostFused(const Tensor& t);

// Drops the registry's dead entries (their tensors were freed) with the mappings their definitions
// hold; also done when an entry is added. Called when JS disposes tensors and graphs (lookups, on
// hot paths, only drop the entry they find dead).
void pruneDeferredFusions();

}  // namespace onestep
