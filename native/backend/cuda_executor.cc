#include "cuda_executor.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "../core/aligned.h"
#include "../core/error.h"
#include "../cpu/cpu_backend.h"
#include "../cpu/lora.h"
#include "../graph/derived.h"
#include "../graph/kernels.h"
#include "cuda_loader.h"

namespace onestep {

namespace {

const onestep_cuda_api& api() {
  const onestep_cuda_api* a = cudaApi();
  if (!a) {
    const CudaStatus& s = loadCudaBackend("");
    fail("ERR_ONESTEP_DEVICE", "CUDA is not usable: ", s.reason.empty() ? std::string("the backend was not loaded") : s.reason);
  }
  return *a;
}

// A failed call of the table: out-of-memory is its own code, the rest ERR_ONESTEP_CUDA.
void cudaCheck(int rc, const char* err, const char* what) {
  if (rc == 0) return;
  const std::string msg = err[0] ? err : "unknown CUDA error";
  if (msg.rfind("out of memory", 0) == 0) fail("ERR_ONESTEP_OUT_OF_MEMORY", what, ": ", msg);
  fail("ERR_ONESTEP_CUDA", what, ": ", msg);
}

#define CUDA_CALL(what, call)      \
  do {                             \
    char err_[512] = {0};          \
    const int rc_ = (call);        \
    cudaCheck(rc_, err_, what);    \
  } while (0)
#define ERRBUF err_, sizeof(err_)

}  // namespace

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  std::vector<std::shared_ptr<DeviceBuffer>> deps;  // what it was made from and is made again from (a LoRA fusion's base and parts)
  ~DeviceBuffer() {
    const onestep_cuda_api* a = cudaApi();
    if (ptr && a) a->release(ptr);
  }
};

namespace {

std::shared_ptr<DeviceBuffer> allocDevice(size_t bytes, const char* what) {
  auto b = std::make_shared<DeviceBuffer>();
  b->bytes = bytes;
  CUDA_CALL(what, api().alloc(bytes, &b->ptr, ERRBUF));
  return b;
}

// Device copies of host tensors, shared by every graph that uses them (weights are uploaded once
// per process). An entry is valid while the host memory it was made from is alive. A deferred LoRA
// fusion (native/cpu/lora.h) is made on the device from its base's copy and its parts' copies, and
// made again in place when its definition changes (refuseDeviceCopies).
struct WeightCache {
  struct Entry {
    std::weak_ptr<const void> owner;
    std::weak_ptr<DeviceBuffer> buffer;
  };
  std::recursive_mutex mutex;  // a fusion's copy asks for its base's
  std::map<std::tuple<uintptr_t, size_t, int, bool>, Entry> entries;  // host data, bytes, device dtype, conv relayout
};

WeightCache& weightCache() {
  static WeightCache* c = new WeightCache();  // never destroyed: device buffers outlive static teardown order
  return *c;
}

// `convKernel`: t is a conv2d kernel as the graph holds it, [Co, Ci, kh, kw]; the device gets the
// layout the CUDA kernels read, [Co, kh, kw, Ci] (relaid out on the host for the upload only).
void describe(onestep_cuda_tensor& t, void* data, DType dtype, const Shape& shape) {
  std::memset(&t, 0, sizeof(t));
  t.data = data;
  t.dtype = (int32_t)dtype;
  t.rank = (int32_t)shape.size();
  for (size_t i = 0; i < shape.size() && i < ONESTEP_CUDA_MAX_RANK; ++i) t.shape[i] = shape[i];
}

std::shared_ptr<DeviceBuffer> deviceCopy(const Tensor& src, DType want, void* stream, bool convKernel = false);

// A two-way option from the environment: true when unset or `on`, false when `off`, else an
// ERR_ONESTEP_OPTION naming the variable.
bool envChoice(const char* name, const char* on, const char* off) {
  const char* e = std::getenv(name);
  const std::string v = e ? e : "";
  if (v.empty() || v == on) return true;
  if (v == off) return false;
  fail("ERR_ONESTEP_OPTION", name, " must be '", on, "' or '", off, "', got '", v, "'");
}

// ONESTEP_LORA_BASE: "keep" (default: a fused weight's base stays on the device beside it, so a
// re-fusion is a kernel) or "reload" (uploaded again from the mapped checkpoint for each fusion and
// freed after it, unless a graph reads it anyway: the touched weights take their memory once).
bool keepLoraBase() { return envChoice("ONESTEP_LORA_BASE", "keep", "reload"); }

// Makes `out` (the device copy, as `want`, of a deferred fusion of shape `shape`) from its definition:
// base and parts uploaded (cached, held by out), then fused by the library (lora_fuse).

void fuseOnDevice(DeviceBuffer& out, const LoraDefinition& def, DType want, const Shape& shape, void* stream, bool convKernel) {
  const bool keep = keepLoraBase();
  // the base in its own dtype (one rounding, to `want`, at the end)
  std::vector<std::shared_ptr<DeviceBuffer>> deps{deviceCopy(def.base, def.base.dtype(), stream, convKernel)};
  std::vector<onestep_cuda_tensor> ups(def.parts.size()), downs(def.parts.size());
  std::vector<float> factors;
  for (size_t i = 0; i < def.parts.size(); ++i) {
    const LoraPart& p = def.parts[i];
    deps.push_back(deviceCopy(p.up, p.up.dtype(), stream));
    describe(ups[i], deps.back()->ptr, p.up.dtype(), p.up.shape());
    deps.push_back(deviceCopy(p.down, p.down.dtype(), stream));
    describe(downs[i], deps.back()->ptr, p.down.dtype(), p.down.shape());
    factors.push_back(p.factor);
  }
  const Shape dev = convKernel ? Shape{shape[0], shape[2], shape[3], shape[1]} : shape;
  onestep_cuda_tensor o, b;
  describe(o, out.ptr, want, dev);
  describe(b, deps[0]->ptr, def.base.dtype(), dev);
  const std::string what = "fusing LoRA '" + def.name + "' on the GPU";
  CUDA_CALL(what.c_str(), api().lora_fuse(&o, &b, (int32_t)ups.size(), ups.data(), downs.data(), factors.data(),
                                          convKernel ? shape[1] : 0, stream, ERRBUF));
  CUDA_CALL(what.c_str(), api().stream_sync(stream, ERRBUF));  // the host memory of the uploads is only borrowed
  if (!keep) deps.erase(deps.begin());
  out.deps = std::move(deps);
}

std::shared_ptr<DeviceBuffer> deviceCopy(const Tensor& src, DType want, void* stream, bool convKernel) {
  WeightCache& cache = weightCache();
  const auto key = std::make_tuple((uintptr_t)src.data(), src.nbytes(), (int)want, convKernel);
  std::lock_guard<std::recursive_mutex> lock(cache.mutex);
  auto it = cache.entries.find(key);
  if (it != cache.entries.end() && !it->second.owner.expired()) {
    if (auto b = it->second.buffer.lock()) return b;
  }
  if (auto def = deferredDefinition(src.data())) {
    auto out = allocDevice((size_t)src.numel() * dtypeSize(want), "uploading a weight");
    fuseOnDevice(*out, *def, want, src.shape(), stream, convKernel);
    cache.entries[key] = WeightCache::Entry{src.owner(), out};
    return out;
  }
  const Tensor t = convKernel ? relayoutConvKernel(src.data(), src.dtype(), src.shape()) : src;
  auto out = allocDevice((size_t)t.numel() * dtypeSize(want), "uploading a weight");
  if (want == t.dtype()) {
    CUDA_CALL("uploading a weight", api().copy_to_device(out->ptr, t.data(), t.nbytes(), stream, ERRBUF));
  } else {
    auto raw = allocDevice(t.nbytes(), "uploading a weight");
    CUDA_CALL("uploading a weight", api().copy_to_device(raw->ptr, t.data(), t.nbytes(), stream, ERRBUF));
    CUDA_CALL("converting a weight", api().convert(out->ptr, (int32_t)want, raw->ptr, (int32_t)t.dtype(), t.numel(), stream, ERRBUF));
    CUDA_CALL("converting a weight", api().stream_sync(stream, ERRBUF));  // raw is freed on return
  }
  cache.entries[key] = WeightCache::Entry{src.owner(), out};
  return out;
}

bool isFloat(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

// The GEMM operand type a graph gets: bf16 tensor cores need compute capability 8.0; older GPUs
// (Turing) take fp16 operands, with fp16's range (docs/CUDA.md).
DType gemmOperandFor(DType asked) {
  if (asked != DType::BF16) return asked;
  const CudaStatus& s = loadCudaBackend("");
  return !s.devices.empty() && s.devices[0].ccMajor < 8 ? DType::F16 : asked;
}

}  // namespace

void forgetDeviceCopies(const void* hostData) {
  WeightCache& cache = weightCache();
  std::lock_guard<std::recursive_mutex> lock(cache.mutex);
  eraseEntriesOf(cache.entries, hostData);
}

void refuseDeviceCopies(const void* hostData, const LoraDefinition& def) {
  if (!cudaApi()) return;  // nothing was uploaded
  WeightCache& cache = weightCache();
  std::lock_guard<std::recursive_mutex> lock(cache.mutex);
  static void* stream = nullptr;  // the fusions' own stream (kept: created once per process)
  for (auto& [key, entry] : cache.entries) {
    if (std::get<0>(key) != (uintptr_t)hostData || entry.owner.expired()) continue;
    auto buffer = entry.buffer.lock();
    if (!buffer) continue;
    if (!stream) CUDA_CALL("creating a CUDA stream", api().stream_create(&stream, ERRBUF));
    fuseOnDevice(*buffer, def, (DType)std::get<2>(key), def.base.shape(), stream, std::get<3>(key));
  }
}

CudaExecutor::CudaExecutor(const GraphSpec& spec, const std::vector<OpCost>& costs, const std::vector<int32_t>& aliasOf)
    : spec_(spec), costs_(costs), aliasOf_(aliasOf) {
  const int32_t nv = (int32_t)spec.values.size();
  const size_t nn = spec.nodes.size();
  inputPosition_.assign(nv, -1);
  for (size_t i = 0; i < spec.inputs.size(); ++i) inputPosition_[spec.inputs[i]] = (int)i;

  // what the executor cannot hand the library: those nodes run on the CPU
  fallback_.assign(nn, "");
  std::vector<int> otherUses(nv, 0);
  for (const GraphNode& n : spec.nodes)
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k] >= 0 && !(n.op == Op::Conv2d && k == 1)) ++otherUses[n.inputs[k]];
  for (size_t i = 0; i < nn; ++i) {
    const GraphNode& n = spec.nodes[i];
    if (n.op == Op::Reshape) continue;  // a view on either side
    bool rankOk = spec.values[n.output].shape.size() <= ONESTEP_CUDA_MAX_RANK;
    for (int32_t id : n.inputs) rankOk = rankOk && (id < 0 || spec.values[id].shape.size() <= ONESTEP_CUDA_MAX_RANK);
    if (n.inputs.size() > ONESTEP_CUDA_MAX_INPUTS || n.attrs.size() > ONESTEP_CUDA_MAX_ATTRS)
      fallback_[i] = "more inputs or attributes than the CUDA table carries";
    else if (!rankOk)
      fallback_[i] = "a tensor of more than " + std::to_string(ONESTEP_CUDA_MAX_RANK) + " dims";
    else if (n.op == Op::Conv2d && spec.values[n.inputs[1]].kind != ValueKind::Const)
      fallback_[i] = "its kernel is computed by the graph (the CUDA kernels read weights relaid out when uploaded)";
    else if (n.op == Op::Conv2d && otherUses[n.inputs[1]] > 0)
      fallback_[i] = "its kernel is also read by another node (the CUDA backend holds kernels in its own layout)";
  }

  keepLoraBase();  // ONESTEP_LORA_BASE checked when any graph is built, LoRA or not
  CUDA_CALL("creating a CUDA stream", api().stream_create(&stream_, ERRBUF));
  try {
    // GEMM and convolution weights as the tensor cores' operand type (fp16, or bf16 where the graph
    // asks for fp32's range), everything else as stored
    const DType gemmDtype = gemmOperandFor(spec.gemmOperand);
    operand_ = (int32_t)gemmDtype;
    std::vector<bool> gemmWeight(nv, false), convKernel(nv, false);
    for (size_t i = 0; i < nn; ++i) {
      const GraphNode& n = spec.nodes[i];
      if (!fallback_[i].empty()) continue;
      if ((n.op == Op::Linear || n.op == Op::Conv2d) && n.inputs.size() > 1 && n.inputs[1] >= 0 &&
          spec.values[n.inputs[1]].kind == ValueKind::Const)
        gemmWeight[n.inputs[1]] = true;
      if (n.op == Op::Conv2d) convKernel[n.inputs[1]] = true;
    }
    data_.assign(nv, nullptr);
    deviceDtype_.resize(nv);
    deviceShape_.resize(nv);
    for (int32_t i = 0; i < nv; ++i) {
      const GraphValue& v = spec.values[i];
      deviceShape_[i] = v.shape;
      deviceDtype_[i] = v.kind == ValueKind::Const && gemmWeight[i] && isFloat(v.dtype) ? gemmDtype : v.dtype;
      if (convKernel[i]) deviceShape_[i] = Shape{v.shape[0], v.shape[2], v.shape[3], v.shape[1]};
    }

    // the library's word on the rest (asked without data), then the values' storage and each node's
    // algorithm; a node the library turns down runs on the CPU, and the storage is chosen again
    planNodes(gemmDtype);
    // uploads: what device nodes read
    std::vector<bool> deviceReads(nv, false);
    for (size_t i = 0; i < nn; ++i)
      if (fallback_[i].empty() && spec.nodes[i].op != Op::Reshape)
        for (int32_t id : spec.nodes[i].inputs)
          if (id >= 0) deviceReads[aliasOf_[id]] = true;
    consts_.resize(nv);
    for (int32_t i = 0; i < nv; ++i) {
      const GraphValue& v = spec.values[i];
      if (v.kind != ValueKind::Const || !deviceReads[i]) continue;
      consts_[i] = deviceCopy(spec.consts[v.constIndex], deviceDtype_[i], stream_, convKernel[i]);
      data_[i] = consts_[i]->ptr;
    }
    // the arena, planned with the sizes as stored here
    std::vector<size_t> bytes(nv, 0);
    for (int32_t i = 0; i < nv; ++i) bytes[i] = (size_t)shapeNumel(spec.values[i].shape) * dtypeSize(deviceDtype_[aliasOf_[i]]);
    arenaBytes_ = planArena(spec, aliasOf_, bytes, offset_);
    arena_ = allocDevice(arenaBytes_, "allocating the activation arena");
    uint64_t workspaceBytes = 0;
    for (size_t i = 0; i < nn; ++i)
      if (fallback_[i].empty()) workspaceBytes = std::max<uint64_t>(workspaceBytes, plan_[i].workspace_bytes);
    if (workspaceBytes) workspace_ = allocDevice((size_t)workspaceBytes, "allocating the nodes' workspace");
    for (int32_t i = 0; i < nv; ++i)
      if (offset_[i] >= 0) data_[i] = static_cast<uint8_t*>(arena_->ptr) + offset_[i];
    // graph inputs and outputs stored in 16 bits pass through a float32 staging buffer (converted on the device)
    size_t staging = 0;
    for (int32_t id : spec.inputs) {
      const GraphValue& v = spec.values[id];
      const size_t n = (size_t)shapeNumel(v.shape);
      inputs_.push_back(deviceReads[id] ? allocDevice(n * dtypeSize(deviceDtype_[id]), "allocating graph inputs") : nullptr);
      if (inputs_.back()) data_[id] = inputs_.back()->ptr;
      if (inputs_.back() && deviceDtype_[id] != v.dtype) staging = std::max(staging, n * dtypeSize(v.dtype));
    }
    for (int32_t id : spec.outputs) {
      const int32_t r = aliasOf_[id];
      if (deviceDtype_[r] != spec.values[id].dtype) staging = std::max(staging, (size_t)shapeNumel(spec.values[id].shape) * dtypeSize(spec.values[id].dtype));
    }
    if (staging) staging_ = allocDevice(staging, "allocating the staging buffer of graph inputs and outputs");
    planPlacement(arenaBytes_);
    CUDA_CALL("uploading weights", api().stream_sync(stream_, ERRBUF));
  } catch (...) {
    for (Segment& seg : segments_)
      if (seg.exec) api().graph_destroy(seg.exec);
    api().stream_destroy(stream_);
    throw;
  }
}

// ONESTEP_CUDA_ACTIVATIONS: "16" (default) stores activations in the graph's 16-bit type where the
// kernels take it; "f32" keeps every activation float32 (to compare, or to rule the rounding out).
bool activationsIn16Bits() { return envChoice("ONESTEP_CUDA_ACTIVATIONS", "16", "f32"); }

void CudaExecutor::describeNode(size_t index, onestep_cuda_node& n, bool withData) const {
  const GraphNode& node = spec_.nodes[index];
  std::memset(&n, 0, sizeof(n));
  n.op = (int32_t)node.op;
  n.n_inputs = (int32_t)node.inputs.size();
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    const int32_t id = node.inputs[k];
    if (id < 0) continue;  // absent optional input: data == NULL, rank 0
    const int32_t r = aliasOf_[id];
    describe(n.inputs[k], withData ? data_[r] : nullptr, deviceDtype_[r], deviceShape_[id]);
  }
  const int32_t out = aliasOf_[node.output];
  describe(n.output, withData ? data_[out] : nullptr, deviceDtype_[out], spec_.values[node.output].shape);
  n.n_attrs = (int32_t)node.attrs.size();
  for (size_t k = 0; k < node.attrs.size(); ++k) n.attrs[k] = node.attrs[k];
  n.operand = operand_;
  n.algorithm = plan_[index].algorithm;
  if (withData && plan_[index].workspace_bytes) {
    n.workspace = workspace_->ptr;
    n.workspace_bytes = plan_[index].workspace_bytes;
  }
}

// Which values are stored in 16 bits (docs/CUDA.md, "Activations"): every float activation (a graph
// input or a node's output) that no CPU node reads or writes, unless a node that reads or writes
// it is refused by the library so (its limits: e.g. the scheduler step keeps its latents float32);
// then that node's values go back to float32, and to 16 bits again one by one where it takes
// them, and the others are asked again, until every device node takes what it gets. Linear /
// conv2d biases read nowhere else are uploaded in their nodes' output type (cuBLASLt's bias type is
// D's) unless a node takes them only in float32. Every refusal leaves fewer 16-bit values (or one
// more float32 bias) than the state it refused, so this ends. False when a node was refused with
// only float32 values of its own (it now runs on the CPU: choose again).
bool CudaExecutor::chooseStorage(DType act, const std::vector<DType>& base) {
  const int32_t nv = (int32_t)spec_.values.size();
  const size_t nn = spec_.nodes.size();
  std::vector<bool> cpu(nv, false), half(nv, false);
  std::vector<int> biasReads(nv, 0), otherReads(nv, 0);
  for (size_t i = 0; i < nn; ++i) {
    const GraphNode& n = spec_.nodes[i];
    if (n.op == Op::Reshape) continue;
    const bool onCpu = !fallback_[i].empty();
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.inputs[k] < 0) continue;
      const int32_t r = aliasOf_[n.inputs[k]];
      if (onCpu) cpu[r] = true;
      const bool bias = !onCpu && (n.op == Op::Linear || n.op == Op::Conv2d) && k == 2;
      ++(bias ? biasReads : otherReads)[r];
    }
    if (onCpu) cpu[aliasOf_[n.output]] = true;
  }
  for (int32_t v = 0; v < nv; ++v) {
    const GraphValue& gv = spec_.values[v];
    half[v] = aliasOf_[v] == v && gv.dtype == DType::F32 && !cpu[v] && (gv.kind == ValueKind::Node || gv.kind == ValueKind::Input);
  }
  onestep_cuda_node desc;
  std::vector<bool> biasF32(nv, false);  // biases some node took only in float32
  for (bool changed = true; changed;) {
    changed = false;
    for (int32_t v = 0; v < nv; ++v) deviceDtype_[v] = half[aliasOf_[v]] ? act : base[v];
    // a bias shared by nodes whose outputs all are 16-bit
    std::vector<int> halfOut(nv, 0);
    for (size_t i = 0; i < nn; ++i) {
      const GraphNode& n = spec_.nodes[i];
      if (fallback_[i].empty() && (n.op == Op::Linear || n.op == Op::Conv2d) && n.inputs.size() > 2 && n.inputs[2] >= 0 && half[aliasOf_[n.output]])
        ++halfOut[aliasOf_[n.inputs[2]]];
    }
    for (int32_t v = 0; v < nv; ++v)
      if (spec_.values[v].kind == ValueKind::Const && biasReads[v] > 0 && otherReads[v] == 0 && halfOut[v] == biasReads[v] &&
          spec_.values[v].dtype == DType::F32 && !biasF32[v])
        deviceDtype_[v] = act;
    for (size_t i = 0; i < nn; ++i) {
      const GraphNode& n = spec_.nodes[i];
      if (n.op == Op::Reshape || !fallback_[i].empty()) continue;
      describeNode(i, desc, false);
      char why[512] = {0};
      if (api().supports_node(&desc, why, sizeof(why)) == 1) continue;
      // all its 16-bit values to float32, then back to 16 bits one at a time where it takes them (a
      // node that refuses 16-bit latents may still read a 16-bit model output); its bias last
      std::vector<int32_t> mine;
      for (int32_t id : n.inputs)
        if (id >= 0 && half[aliasOf_[id]]) mine.push_back(aliasOf_[id]);
      if (half[aliasOf_[n.output]]) mine.push_back(aliasOf_[n.output]);
      const int32_t bias = (n.op == Op::Linear || n.op == Op::Conv2d) && n.inputs.size() > 2 && n.inputs[2] >= 0 ? aliasOf_[n.inputs[2]] : -1;
      const bool halfBias = bias >= 0 && deviceDtype_[bias] == act && base[bias] != act;
      auto set = [&](int32_t r, bool h) {
        half[r] = h;
        deviceDtype_[r] = h ? act : base[r];
      };
      auto takes = [&]() {
        describeNode(i, desc, false);
        std::memset(why, 0, sizeof(why));
        return api().supports_node(&desc, why, sizeof(why)) == 1;
      };
      for (int32_t r : mine) set(r, false);
      if (bias >= 0) deviceDtype_[bias] = base[bias];
      if (!takes()) {  // refused with float32 activations: it runs on the CPU (choose again)
        fallback_[i] = why[0] ? why : "the CUDA backend does not run it";
        return false;
      }
      for (int32_t r : mine)
        if (!(set(r, true), takes())) set(r, false);
      if (halfBias && half[aliasOf_[n.output]]) {
        deviceDtype_[bias] = act;
        if (!takes()) deviceDtype_[bias] = base[bias], biasF32[bias] = true;
      }
      changed = true;  // the node now takes a state with fewer 16-bit values than the one it refused
    }
  }
  return true;
}

// What the library runs (asked with float32 activations: shapes, dtypes, attributes), the storage
// of every value, then each device node's algorithm and workspace.
void CudaExecutor::planNodes(DType act) {
  const size_t nn = spec_.nodes.size();
  const std::vector<DType> base = deviceDtype_;  // weights as uploaded, everything else as the graph holds it
  const bool sixteen = activationsIn16Bits();
  plan_.assign(nn, onestep_cuda_node_plan{});
  onestep_cuda_node desc;
  char why[512];
  for (size_t i = 0; i < nn; ++i) {
    if (spec_.nodes[i].op == Op::Reshape || !fallback_[i].empty()) continue;
    describeNode(i, desc, false);
    std::memset(why, 0, sizeof(why));
    if (api().supports_node(&desc, why, sizeof(why)) != 1) fallback_[i] = why[0] ? why : "the CUDA backend does not run it";
  }
  for (;;) {
    deviceDtype_ = base;
    // a graph that asked for bf16 (fp32's range) on a GPU without it keeps float32 activations
    const bool narrowed = spec_.gemmOperand == DType::BF16 && act != DType::BF16;
    if (sixteen && !narrowed && !chooseStorage(act, base)) continue;
    // the library's algorithm per node (a vendor library's, with its heuristic, or its own kernels)
    // and the scratch that needs: one workspace serves every node (they run one after another)
    bool refused = false;
    for (size_t i = 0; i < nn; ++i) {
      if (spec_.nodes[i].op == Op::Reshape || !fallback_[i].empty()) continue;
      plan_[i] = onestep_cuda_node_plan{};
      describeNode(i, desc, false);
      std::memset(why, 0, sizeof(why));
      if (api().plan_node(&desc, &plan_[i], why, sizeof(why)) != 0) {
        fallback_[i] = std::string("the CUDA backend could not plan it: ") + why;
        refused = true;
        continue;
      }
      plan_[i].name[sizeof(plan_[i].name) - 1] = 0;
    }
    if (!refused) return;
  }
}

// Segments of consecutive device / CPU nodes and the copies between them: a value crosses to the
// other side once, before the first segment there that reads it.
void CudaExecutor::planPlacement(size_t arenaBytes) {
  const int32_t nv = (int32_t)spec_.values.size();
  std::vector<bool> onHost(nv, false), onDevice(nv, false);
  for (int32_t i = 0; i < nv; ++i) {
    const ValueKind k = spec_.values[i].kind;
    if (k == ValueKind::Const) onHost[i] = true, onDevice[i] = consts_[i] != nullptr;
    if (k == ValueKind::Input) onHost[i] = true, onDevice[i] = inputs_[inputPosition_[i]] != nullptr;
  }
  std::vector<size_t> cpuNodes;
  for (size_t i = 0; i < spec_.nodes.size(); ++i) {
    const GraphNode& n = spec_.nodes[i];
    if (n.op == Op::Reshape) continue;
    const bool cpu = !fallback_[i].empty();
    if (segments_.empty() || segments_.back().onCpu != cpu) {
      segments_.emplace_back();
      segments_.back().onCpu = cpu;
    }
    Segment& seg = segments_.back();
    seg.nodes.push_back(i);
    if (cpu) cpuNodes.push_back(i);
    for (int32_t id : n.inputs) {
      if (id < 0) continue;
      const int32_t r = aliasOf_[id];
      if (cpu && !onHost[r]) {
        seg.toHost.push_back(r);
        onHost[r] = true;
      } else if (!cpu && !onDevice[r]) {
        check(spec_.values[r].kind == ValueKind::Node, "ERR_ONESTEP_GRAPH", "value '", spec_.values[r].name, "' is not on the GPU");
        seg.toDevice.push_back(r);
        onDevice[r] = true;
      }
    }
    onHost[n.output] = cpu;
    onDevice[n.output] = !cpu;
  }
  for (int32_t id : spec_.outputs) outputOnHost_.push_back(onHost[aliasOf_[id]]);
  if (cpuNodes.empty()) return;
  cpu_ = std::make_unique<CpuPlan>(spec_, cpuNodes);
  try {
    host_ = std::shared_ptr<void>(alignedAlloc(64, std::max<size_t>(64, arenaBytes)), AlignedFree{});
  } catch (const std::bad_alloc&) {
    fail("ERR_ONESTEP_OUT_OF_MEMORY", "cannot allocate the ", arenaBytes, "-byte host mirror of the activation arena");
  }
}

std::vector<NodePlacement> CudaExecutor::placements() const {
  std::vector<NodePlacement> out;
  for (size_t i = 0; i < spec_.nodes.size(); ++i) {
    if (fallback_[i].empty()) out.push_back(NodePlacement{"cuda", plan_[i].name, false, "", dtypeName(deviceDtype_[aliasOf_[spec_.nodes[i].output]])});
    else out.push_back(NodePlacement{"cpu", cpu_->step(i).algorithm, true, fallback_[i], dtypeName(spec_.values[spec_.nodes[i].output].dtype)});
  }
  return out;
}

CudaExecutor::~CudaExecutor() {
  for (Segment& seg : segments_)
    if (seg.exec) api().graph_destroy(seg.exec);
  char err[256] = {0};
  api().stream_sync(stream_, err, sizeof(err));
  api().stream_destroy(stream_);
}

void* CudaExecutor::hostData(int32_t id, const std::vector<Tensor>& inputs) const {
  const int32_t r = aliasOf_[id];
  const GraphValue& v = spec_.values[r];
  if (v.kind == ValueKind::Const) return const_cast<uint8_t*>(spec_.consts[v.constIndex].data());
  if (v.kind == ValueKind::Input) return const_cast<uint8_t*>(inputs[inputPosition_[r]].data());
  return static_cast<uint8_t*>(host_.get()) + offset_[r];
}

void CudaExecutor::copyAcross(const Segment& seg, const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile) {
  const auto t0 = std::chrono::steady_clock::now();
  auto bytes = [&](int32_t r) { return (size_t)shapeNumel(spec_.values[r].shape) * dtypeSize(spec_.values[r].dtype); };
  double moved = 0;
  for (int32_t r : seg.toHost) {
    CUDA_CALL("copying to the CPU fallback", api().copy_to_host(hostData(r, inputs), data_[r], bytes(r), stream_, ERRBUF));
    moved += (double)bytes(r);
  }
  for (int32_t r : seg.toDevice) {
    CUDA_CALL("copying from the CPU fallback", api().copy_to_device(data_[r], hostData(r, inputs), bytes(r), stream_, ERRBUF));
    moved += (double)bytes(r);
  }
  // the CPU waits for the device: for what it reads, and so that no pending copy still reads
  // host memory its nodes overwrite
  if (seg.onCpu) CUDA_CALL("waiting for the GPU", api().stream_sync(stream_, ERRBUF));
  if (profile && (moved > 0 || seg.onCpu)) {
    if (!seg.onCpu) CUDA_CALL("profiling", api().stream_sync(stream_, ERRBUF));
    profile->push_back(NodeProfile{"copy", "cuda", seg.onCpu ? "to_host" : "to_device",
                                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0});
  }
}

void CudaExecutor::runCpu(const Segment& seg, const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile) {
  std::vector<TensorRef> in;
  for (size_t index : seg.nodes) {
    const GraphNode& node = spec_.nodes[index];
    in.clear();
    for (int32_t id : node.inputs) {
      if (id < 0) in.push_back(TensorRef{});
      else in.push_back(TensorRef{hostData(id, inputs), spec_.values[id].dtype, &spec_.values[id].shape});
    }
    const GraphValue& ov = spec_.values[node.output];
    const TensorRef out{hostData(node.output, inputs), ov.dtype, &ov.shape};
    const auto t0 = std::chrono::steady_clock::now();
    cpu_->run(index, spec_, in, out);
    if (profile)
      profile->push_back(NodeProfile{opInfo(node.op).name, "cpu", cpu_->step(index).algorithm,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), costs_[index].flops()});
  }
}

void CudaExecutor::launchDevice(const Segment& seg, std::vector<NodeProfile>* profile) {
  onestep_cuda_node n;
  for (size_t index : seg.nodes) {
    const GraphNode& node = spec_.nodes[index];
    const GraphValue& ov = spec_.values[node.output];
    describeNode(index, n, true);
    const auto t0 = std::chrono::steady_clock::now();
    char err[512] = {0};
    if (api().run_node(&n, stream_, err, sizeof(err)) != 0) fail("ERR_ONESTEP_CUDA", opInfo(node.op).name, " '", ov.name, "': ", err);
    if (profile) {
      CUDA_CALL("profiling", api().stream_sync(stream_, ERRBUF));
      profile->push_back(NodeProfile{opInfo(node.op).name, "cuda", plan_[index].name,
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), costs_[index].flops()});
    }
  }
}

std::vector<Tensor> CudaExecutor::run(const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile, int repeat) {
  check(inputs.size() == spec_.inputs.size(), "ERR_ONESTEP_GRAPH", "run: ", inputs.size(), " inputs for ", spec_.inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const GraphValue& v = spec_.values[spec_.inputs[i]];
    check(inputs[i].dtype() == v.dtype && inputs[i].shape() == v.shape, "ERR_ONESTEP_GRAPH", "input '", v.name, "' must be ",
          dtypeName(v.dtype), shapeString(v.shape), ", got ", dtypeName(inputs[i].dtype()), shapeString(inputs[i].shape()));
  }
  // index inputs are checked here: a kernel cannot throw (the CPU kernels' checks, same messages)
  for (const GraphNode& node : spec_.nodes) {
    const bool emb = node.op == Op::Embedding, sel = node.op == Op::SelectRows;
    if (!emb && !sel) continue;
    const int32_t idxId = emb ? node.inputs[0] : node.inputs[1];
    if (inputPosition_[idxId] < 0) continue;
    const Tensor& t = inputs[inputPosition_[idxId]];
    const int64_t* ids = reinterpret_cast<const int64_t*>(t.data());
    const Shape& table = spec_.values[node.inputs[emb ? 1 : 0]].shape;
    const int64_t limit = emb ? table[0] : table[1];
    for (int64_t i = 0; i < t.numel(); ++i)
      check(ids[i] >= 0 && ids[i] < limit, "ERR_ONESTEP_VALUE", emb ? "embedding: id " : "select_rows: index ", ids[i], " at position ", i,
            " is outside [0, ", limit, ")");
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs_[i]) continue;
    const DType stored = deviceDtype_[spec_.inputs[i]];
    if (stored == inputs[i].dtype()) {
      CUDA_CALL("copying inputs to the GPU", api().copy_to_device(inputs_[i]->ptr, inputs[i].data(), inputs[i].nbytes(), stream_, ERRBUF));
      continue;
    }
    // stored in 16 bits: through the staging buffer (stream order keeps its reuse safe)
    CUDA_CALL("copying inputs to the GPU", api().copy_to_device(staging_->ptr, inputs[i].data(), inputs[i].nbytes(), stream_, ERRBUF));
    CUDA_CALL("converting inputs on the GPU", api().convert(inputs_[i]->ptr, (int32_t)stored, staging_->ptr, (int32_t)inputs[i].dtype(),
                                                            inputs[i].numel(), stream_, ERRBUF));
  }

  for (int rep = 0; rep < std::max(1, repeat); ++rep) {
    for (Segment& seg : segments_) {
      copyAcross(seg, inputs, profile);
      if (seg.onCpu) {
        runCpu(seg, inputs, profile);
        continue;
      }
      if (profile) {
        launchDevice(seg, profile);
        continue;
      }
      if (!seg.exec && !captureFailed_) {
        char err[512] = {0};
        if (api().capture_begin(stream_, err, sizeof(err)) == 0) {
          try {
            launchDevice(seg, nullptr);
          } catch (...) {
            void* discard = nullptr;
            api().capture_end(stream_, &discard, err, sizeof(err));
            if (discard) api().graph_destroy(discard);
            throw;
          }
          if (api().capture_end(stream_, &seg.exec, err, sizeof(err)) != 0) {
            seg.exec = nullptr;
            captureFailed_ = true;  // run node by node from now on
          }
        } else {
          captureFailed_ = true;
        }
      }
      if (seg.exec) CUDA_CALL("launching the CUDA graph", api().graph_launch(seg.exec, stream_, ERRBUF));
      else launchDevice(seg, nullptr);
    }
    if (profile) break;  // a profile is one pass
  }
  std::vector<Tensor> results;
  for (size_t k = 0; k < spec_.outputs.size(); ++k) {
    const GraphValue& v = spec_.values[spec_.outputs[k]];
    results.push_back(Tensor::empty(v.dtype, v.shape));
    if (outputOnHost_[k]) continue;
    const int32_t r = aliasOf_[spec_.outputs[k]];
    const void* from = data_[r];
    if (deviceDtype_[r] != v.dtype) {  // stored in 16 bits: converted into the staging buffer first
      CUDA_CALL("converting outputs on the GPU", api().convert(staging_->ptr, (int32_t)v.dtype, data_[r], (int32_t)deviceDtype_[r],
                                                               results.back().numel(), stream_, ERRBUF));
      from = staging_->ptr;
    }
    CUDA_CALL("copying outputs from the GPU", api().copy_to_host(results.back().mutableData(), from, results.back().nbytes(), stream_, ERRBUF));
  }
  CUDA_CALL("running the graph on the GPU", api().stream_sync(stream_, ERRBUF));
  for (size_t k = 0; k < spec_.outputs.size(); ++k)
    if (outputOnHost_[k] && results[k].nbytes()) std::memcpy(results[k].mutableData(), hostData(spec_.outputs[k], inputs), results[k].nbytes());
  return results;
}

}  // namespace onestep
