#include "graph.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <time.h>

#include "../backend/cuda_executor.h"
#include "../core/error.h"
#include "../core/aligned.h"
#include "../cpu/cpu_backend.h"
#include "../cpu/lora.h"
#include "kernels.h"

namespace onestep {

namespace {
constexpr size_t kAlign = 64;
size_t alignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

std::shared_ptr<void> allocArena(size_t bytes) {
  try {
    return std::shared_ptr<void>(alignedAlloc(kAlign, std::max<size_t>(kAlign, alignUp(bytes))), AlignedFree{});
  } catch (const std::bad_alloc&) {
    fail("ERR_ONESTEP_OUT_OF_MEMORY", "cannot allocate the ", bytes, "-byte activation arena");
  }
}
}  // namespace

double processCpuSeconds() {
#if defined(_WIN32)
  return -1;
#else
  timespec ts{};
  if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return -1;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
#endif
}

int64_t TensorRef::numel() const { return shape ? shapeNumel(*shape) : 0; }

Graph::Graph(GraphSpec spec, Device device) : spec_(std::move(spec)), device_(device) {
  validate();
  plan();
}

size_t Graph::arenaBytes() const { return cuda_ ? cuda_->arenaBytes() : arenaBytes_; }

void Graph::prepare() {
  std::lock_guard<std::mutex> lock(runMutex_);
  prepareLocked();
}

void Graph::prepareLocked() {
  if (!cuda_ && !cpu_) {
    // constants returned as outputs are copied from the host: deferred LoRA fusions made there first
    for (int32_t id : spec_.outputs) {
      const GraphValue& v = spec_.values[aliasOf_[id]];
      if (v.kind == ValueKind::Const) ensureHostFused(spec_.consts[v.constIndex]);
    }
  }
  if (device_ == Device::Cuda) {
    if (!cuda_) cuda_ = std::make_unique<CudaExecutor>(spec_, costs_, aliasOf_);
    return;
  }
  if (!cpu_) {
    std::vector<size_t> all(spec_.nodes.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    cpu_ = std::make_unique<CpuPlan>(spec_, all);
  }
}

std::vector<NodePlacement> Graph::placements() {
  std::lock_guard<std::mutex> lock(runMutex_);
  prepareLocked();
  if (cuda_) return cuda_->placements();
  std::vector<NodePlacement> out;
  for (size_t i = 0; i < spec_.nodes.size(); ++i) out.push_back(NodePlacement{"cpu", cpu_->step(i).algorithm, false, ""});
  return out;
}

Graph::~Graph() = default;

void Graph::validate() {
  const auto& values = spec_.values;
  const int32_t nv = (int32_t)values.size();
  std::vector<bool> defined(nv, false);
  std::vector<bool> isInput(nv, false);
  for (int32_t i = 0; i < nv; ++i) {
    const GraphValue& v = values[i];
    shapeNumel(v.shape);
    if (v.kind == ValueKind::Const) {
      check(v.constIndex >= 0 && v.constIndex < (int)spec_.consts.size(), "ERR_ONESTEP_GRAPH", "value ", i,
            " refers to constant ", v.constIndex, " of ", spec_.consts.size());
      const Tensor& t = spec_.consts[v.constIndex];
      check(t.dtype() == v.dtype && t.shape() == v.shape, "ERR_ONESTEP_GRAPH", "constant '", v.name, "' is ",
            dtypeName(t.dtype()), shapeString(t.shape()), " but the graph declares ", dtypeName(v.dtype),
            shapeString(v.shape));
      check(t.data() != nullptr || t.numel() == 0, "ERR_ONESTEP_GRAPH", "constant '", v.name, "' has no data");
      defined[i] = true;
    }
  }
  for (int32_t id : spec_.inputs) {
    check(id >= 0 && id < nv && values[id].kind == ValueKind::Input, "ERR_ONESTEP_GRAPH", "input id ", id,
          " is not an input value");
    check(!isInput[id], "ERR_ONESTEP_GRAPH", "input ", id, " listed twice");
    isInput[id] = true;
    defined[id] = true;
  }
  for (int32_t i = 0; i < nv; ++i)
    check(values[i].kind != ValueKind::Input || isInput[i], "ERR_ONESTEP_GRAPH", "input value ", i, " ('",
          values[i].name, "') is not in the input list");

  for (size_t n = 0; n < spec_.nodes.size(); ++n) {
    const GraphNode& node = spec_.nodes[n];
    check((int)node.op >= 0 && node.op < Op::Count, "ERR_ONESTEP_GRAPH", "node ", n, ": unknown op code ",
          (int)node.op);
    std::vector<const ValueDesc*> ins;
    std::vector<ValueDesc> descs(node.inputs.size());
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int32_t id = node.inputs[k];
      if (id == -1) {
        ins.push_back(nullptr);
        continue;
      }
      check(id >= 0 && id < nv, "ERR_ONESTEP_GRAPH", "node ", n, " (", opInfo(node.op).name, "): input ", k,
            " refers to value ", id, " of ", nv);
      check(defined[id], "ERR_ONESTEP_GRAPH", "node ", n, " (", opInfo(node.op).name, "): input ", k,
            " (value ", id, ") is used before it is computed");
      descs[k] = ValueDesc{values[id].dtype, values[id].shape};
      ins.push_back(&descs[k]);
    }
    const int32_t out = node.output;
    check(out >= 0 && out < nv && values[out].kind == ValueKind::Node, "ERR_ONESTEP_GRAPH", "node ", n,
          ": output ", out, " is not a node value");
    check(!defined[out], "ERR_ONESTEP_GRAPH", "node ", n, ": value ", out, " is computed twice");
    Shape inferred;
    try {
      NodeInfo info = inferNode(node.op, ins, node.attrs);
      inferred = std::move(info.shape);
      costs_.push_back(info.cost);
    } catch (const Error& e) {
      fail(e.code().c_str(), "node ", n, " ('", values[out].name, "'): ", e.what());
    }
    check(values[out].dtype == DType::F32, "ERR_ONESTEP_GRAPH", "node ", n, ": outputs are F32");
    check(inferred == values[out].shape, "ERR_ONESTEP_GRAPH", "node ", n, " (", opInfo(node.op).name, " '",
          values[out].name, "'): declared shape ", shapeString(values[out].shape), " but the op gives ",
          shapeString(inferred));
    defined[out] = true;
  }
  for (int32_t i = 0; i < nv; ++i)
    check(defined[i], "ERR_ONESTEP_GRAPH", "value ", i, " ('", values[i].name, "') is never computed");
  check(!spec_.outputs.empty(), "ERR_ONESTEP_GRAPH", "graph has no outputs");
  for (int32_t id : spec_.outputs)
    check(id >= 0 && id < nv && values[id].kind == ValueKind::Node, "ERR_ONESTEP_GRAPH", "output ", id,
          " must be a computed value");
}

void Graph::plan() {
  const int32_t nv = (int32_t)spec_.values.size();
  aliasOf_.resize(nv);
  for (int32_t i = 0; i < nv; ++i) aliasOf_[i] = i;
  for (const GraphNode& node : spec_.nodes)
    if (node.op == Op::Reshape) aliasOf_[node.output] = aliasOf_[node.inputs[0]];
  std::vector<size_t> bytes(nv, 0);
  for (int32_t i = 0; i < nv; ++i) bytes[i] = (size_t)shapeNumel(spec_.values[i].shape) * dtypeSize(spec_.values[i].dtype);
  arenaBytes_ = planArena(spec_, aliasOf_, bytes, offset_);
}

size_t planArena(const GraphSpec& spec, const std::vector<int32_t>& aliasOf, const std::vector<size_t>& bytesOf, std::vector<int64_t>& offset) {
  const int32_t nv = (int32_t)spec.values.size();
  // last node reading each storage root; outputs live to the end
  const int64_t kForever = (int64_t)spec.nodes.size();
  std::vector<int64_t> lastUse(nv, -1);
  for (size_t n = 0; n < spec.nodes.size(); ++n)
    for (int32_t id : spec.nodes[n].inputs)
      if (id >= 0) lastUse[aliasOf[id]] = std::max<int64_t>(lastUse[aliasOf[id]], (int64_t)n);
  for (int32_t id : spec.outputs) lastUse[aliasOf[id]] = kForever;

  // best-fit allocation in one arena; blocks freed after their last reader runs
  offset.assign(nv, -1);
  std::map<int64_t, size_t> freeBlocks;  // offset -> size
  size_t end = 0;
  auto allocate = [&](size_t bytes) -> int64_t {
    bytes = alignUp(std::max<size_t>(bytes, 1));
    auto best = freeBlocks.end();
    for (auto it = freeBlocks.begin(); it != freeBlocks.end(); ++it)
      if (it->second >= bytes && (best == freeBlocks.end() || it->second < best->second)) best = it;
    if (best != freeBlocks.end()) {
      const int64_t off = best->first;
      const size_t rest = best->second - bytes;
      freeBlocks.erase(best);
      if (rest) freeBlocks[off + (int64_t)bytes] = rest;
      return off;
    }
    // grow: if the last free block touches the end, extend it
    if (!freeBlocks.empty()) {
      auto last = std::prev(freeBlocks.end());
      if ((size_t)last->first + last->second == end) {
        const int64_t off = last->first;
        end = (size_t)off + bytes;
        freeBlocks.erase(last);
        return off;
      }
    }
    const int64_t off = (int64_t)end;
    end += bytes;
    return off;
  };
  auto release = [&](int64_t off, size_t bytes) {
    bytes = alignUp(std::max<size_t>(bytes, 1));
    auto it = freeBlocks.emplace(off, bytes).first;
    auto next = std::next(it);
    if (next != freeBlocks.end() && it->first + (int64_t)it->second == next->first) {
      it->second += next->second;
      freeBlocks.erase(next);
    }
    if (it != freeBlocks.begin()) {
      auto prev = std::prev(it);
      if (prev->first + (int64_t)prev->second == it->first) {
        prev->second += it->second;
        freeBlocks.erase(it);
      }
    }
  };
  std::vector<int64_t> producer(nv, -1);
  for (size_t n = 0; n < spec.nodes.size(); ++n) producer[spec.nodes[n].output] = (int64_t)n;
  std::vector<std::vector<int32_t>> dies(spec.nodes.size());
  for (int32_t i = 0; i < nv; ++i)
    if (aliasOf[i] == i && spec.values[i].kind == ValueKind::Node && lastUse[i] < kForever)
      dies[std::max(lastUse[i], producer[i])].push_back(i);  // unread values die where they are made
  for (size_t n = 0; n < spec.nodes.size(); ++n) {
    const int32_t out = spec.nodes[n].output;
    if (aliasOf[out] == out) offset[out] = allocate(bytesOf[out]);
    for (int32_t id : dies[n]) release(offset[id], bytesOf[id]);
  }
  return end;
}

std::vector<Tensor> Graph::run(const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile, int repeat) {
  std::lock_guard<std::mutex> lock(runMutex_);
  prepareLocked();
  if (cuda_) return cuda_->run(inputs, profile, repeat);
  check(inputs.size() == spec_.inputs.size(), "ERR_ONESTEP_GRAPH", "run: ", inputs.size(), " inputs for ",
        spec_.inputs.size());
  const int32_t nv = (int32_t)spec_.values.size();
  std::vector<void*> data(nv, nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const GraphValue& v = spec_.values[spec_.inputs[i]];
    check(inputs[i].dtype() == v.dtype && inputs[i].shape() == v.shape, "ERR_ONESTEP_GRAPH", "input '", v.name,
          "' must be ", dtypeName(v.dtype), shapeString(v.shape), ", got ", dtypeName(inputs[i].dtype()),
          shapeString(inputs[i].shape()));
    data[spec_.inputs[i]] = const_cast<uint8_t*>(inputs[i].data());
  }
  for (int32_t i = 0; i < nv; ++i)
    if (spec_.values[i].kind == ValueKind::Const) data[i] = const_cast<uint8_t*>(spec_.consts[spec_.values[i].constIndex].data());
  if (!arena_) arena_ = allocArena(arenaBytes_);
  uint8_t* base = static_cast<uint8_t*>(arena_.get());
  for (int32_t i = 0; i < nv; ++i)
    if (offset_[i] >= 0) data[i] = base + offset_[i];

  std::vector<TensorRef> in;
  for (int rep = 0; rep < std::max(1, repeat); ++rep)
  for (const GraphNode& node : spec_.nodes) {
    in.clear();
    for (int32_t id : node.inputs) {
      if (id < 0) {
        in.push_back(TensorRef{});
        continue;
      }
      in.push_back(TensorRef{data[aliasOf_[id]], spec_.values[id].dtype, &spec_.values[id].shape});
    }
    const GraphValue& ov = spec_.values[node.output];
    if (node.op == Op::Reshape) continue;  // a view: nothing to compute
    TensorRef out{data[node.output], ov.dtype, &ov.shape};
    const size_t index = (size_t)(&node - spec_.nodes.data());
    if (profile) {
      const double c0 = processCpuSeconds();
      const auto t0 = std::chrono::steady_clock::now();
      cpu_->run(index, spec_, in, out);
      const auto t1 = std::chrono::steady_clock::now();
      profile->push_back(NodeProfile{opInfo(node.op).name, "cpu", cpu_->step(index).algorithm,
                                     std::chrono::duration<double>(t1 - t0).count(), costs_[index].flops(), processCpuSeconds() - c0});
    } else {
      cpu_->run(index, spec_, in, out);
    }
  }
  std::vector<Tensor> results;
  for (int32_t id : spec_.outputs) {
    const GraphValue& v = spec_.values[id];
    Tensor t = Tensor::empty(v.dtype, v.shape);
    if (t.nbytes()) std::memcpy(t.mutableData(), data[aliasOf_[id]], t.nbytes());
    results.push_back(std::move(t));
  }
  return results;
}

}  // namespace onestep
