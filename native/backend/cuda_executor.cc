#include "cuda_executor.h"

#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "../core/error.h"
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
// per process). An entry is valid while the host memory it was made from is alive.
struct WeightCache {
  struct Entry {
    std::weak_ptr<const void> owner;
    std::weak_ptr<DeviceBuffer> buffer;
  };
  std::mutex mutex;
  std::map<std::tuple<uintptr_t, size_t, int, bool>, Entry> entries;  // host data, bytes, device dtype, conv relayout
};

WeightCache& weightCache() {
  static WeightCache* c = new WeightCache();  // never destroyed: device buffers outlive static teardown order
  return *c;
}

// `convKernel`: t is a conv2d kernel as the graph holds it, [Co, Ci, kh, kw]; the device gets the
// layout the CUDA kernels read, [Co, kh, kw, Ci] (relaid out on the host for the upload only).
std::shared_ptr<DeviceBuffer> deviceCopy(const Tensor& src, DType want, void* stream, bool convKernel = false) {
  WeightCache& cache = weightCache();
  const auto key = std::make_tuple((uintptr_t)src.data(), src.nbytes(), (int)want, convKernel);
  std::lock_guard<std::mutex> lock(cache.mutex);
  auto it = cache.entries.find(key);
  if (it != cache.entries.end() && !it->second.owner.expired()) {
    if (auto b = it->second.buffer.lock()) return b;
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

void describe(onestep_cuda_tensor& t, void* data, DType dtype, const Shape& shape) {
  std::memset(&t, 0, sizeof(t));
  t.data = data;
  t.dtype = (int32_t)dtype;
  t.rank = (int32_t)shape.size();
  for (size_t i = 0; i < shape.size() && i < ONESTEP_CUDA_MAX_RANK; ++i) t.shape[i] = shape[i];
}

}  // namespace

void forgetDeviceCopies(const void* hostData) {
  WeightCache& cache = weightCache();
  std::lock_guard<std::mutex> lock(cache.mutex);
  for (auto it = cache.entries.begin(); it != cache.entries.end();) {
    if (std::get<0>(it->first) == (uintptr_t)hostData) it = cache.entries.erase(it);
    else ++it;
  }
}

CudaExecutor::CudaExecutor(const GraphSpec& spec, const std::vector<OpCost>& costs, const std::vector<int32_t>& aliasOf,
                           const std::vector<int64_t>& offset, size_t arenaBytes)
    : spec_(spec), costs_(costs), aliasOf_(aliasOf) {
  const int32_t nv = (int32_t)spec.values.size();
  for (const GraphNode& n : spec.nodes) {
    check(n.inputs.size() <= ONESTEP_CUDA_MAX_INPUTS && n.attrs.size() <= ONESTEP_CUDA_MAX_ATTRS, "ERR_ONESTEP_GRAPH", opInfo(n.op).name,
          ": too many inputs or attributes for the CUDA backend");
    check(n.op != Op::Conv2d || spec.values[n.inputs[1]].kind == ValueKind::Const, "ERR_ONESTEP_GRAPH",
          "conv2d on CUDA needs a constant kernel (a weight)");
  }
  for (const GraphValue& v : spec.values) check(v.shape.size() <= ONESTEP_CUDA_MAX_RANK, "ERR_ONESTEP_GRAPH", "value '", v.name, "' has too many dims for CUDA");
  CUDA_CALL("creating a CUDA stream", api().stream_create(&stream_, ERRBUF));
  try {
    // GEMM and convolution weights as the tensor cores' operand type (fp16, or bf16 where the graph
    // asks for fp32's range), everything else as stored
    const DType gemmDtype = gemmOperandFor(spec.gemmOperand);
    std::vector<bool> gemmWeight(nv, false), convKernel(nv, false);
    for (const GraphNode& n : spec.nodes) {
      if ((n.op == Op::Linear || n.op == Op::Conv2d) && n.inputs.size() > 1 && n.inputs[1] >= 0) gemmWeight[n.inputs[1]] = true;
      if (n.op == Op::Conv2d) convKernel[n.inputs[1]] = true;
    }
    for (const GraphNode& n : spec.nodes)
      for (size_t k = 0; k < n.inputs.size(); ++k)
        check(!(n.inputs[k] >= 0 && convKernel[n.inputs[k]]) || (n.op == Op::Conv2d && k == 1), "ERR_ONESTEP_GRAPH",
              "a conv2d kernel is used as another input too (the CUDA backend holds it in its own layout)");
    data_.assign(nv, nullptr);
    deviceDtype_.resize(nv);
    deviceShape_.resize(nv);
    for (int32_t i = 0; i < nv; ++i) deviceShape_[i] = spec.values[i].shape;
    consts_.resize(nv);
    for (int32_t i = 0; i < nv; ++i) {
      const GraphValue& v = spec.values[i];
      deviceDtype_[i] = v.dtype;
      if (v.kind != ValueKind::Const) continue;
      const Tensor& t = spec.consts[v.constIndex];
      const DType want = gemmWeight[i] && isFloat(t.dtype()) ? gemmDtype : t.dtype();
      consts_[i] = deviceCopy(t, want, stream_, convKernel[i]);
      deviceDtype_[i] = want;
      if (convKernel[i]) deviceShape_[i] = Shape{v.shape[0], v.shape[2], v.shape[3], v.shape[1]};
      data_[i] = consts_[i]->ptr;
    }
    arena_ = allocDevice(arenaBytes, "allocating the activation arena");
    for (int32_t i = 0; i < nv; ++i)
      if (offset[i] >= 0) data_[i] = static_cast<uint8_t*>(arena_->ptr) + offset[i];
    for (int32_t id : spec.inputs) {
      const GraphValue& v = spec.values[id];
      inputs_.push_back(allocDevice((size_t)shapeNumel(v.shape) * dtypeSize(v.dtype), "allocating graph inputs"));
      data_[id] = inputs_.back()->ptr;
    }
    CUDA_CALL("uploading weights", api().stream_sync(stream_, ERRBUF));
  } catch (...) {
    api().stream_destroy(stream_);
    throw;
  }
}

std::vector<NodePlacement> CudaExecutor::placements() const {
  return std::vector<NodePlacement>(spec_.nodes.size(), NodePlacement{"cuda", "", false});
}

CudaExecutor::~CudaExecutor() {
  if (graphExec_) api().graph_destroy(graphExec_);
  char err[256] = {0};
  api().stream_sync(stream_, err, sizeof(err));
  api().stream_destroy(stream_);
}

void CudaExecutor::launchNodes(std::vector<NodeProfile>* profile) {
  onestep_cuda_node n;
  for (const GraphNode& node : spec_.nodes) {
    if (node.op == Op::Reshape) continue;  // a view: aliased storage
    std::memset(&n, 0, sizeof(n));
    n.op = (int32_t)node.op;
    n.n_inputs = (int32_t)node.inputs.size();
    for (size_t k = 0; k < node.inputs.size(); ++k) {
      const int32_t id = node.inputs[k];
      if (id < 0) continue;  // absent optional input: data == NULL
      describe(n.inputs[k], data_[aliasOf_[id]], deviceDtype_[aliasOf_[id]], deviceShape_[id]);
    }
    const GraphValue& ov = spec_.values[node.output];
    describe(n.output, data_[node.output], ov.dtype, ov.shape);
    n.n_attrs = (int32_t)node.attrs.size();
    for (size_t k = 0; k < node.attrs.size(); ++k) n.attrs[k] = node.attrs[k];
    const auto t0 = std::chrono::steady_clock::now();
    char err[512] = {0};
    if (api().run_node(&n, stream_, err, sizeof(err)) != 0) fail("ERR_ONESTEP_CUDA", opInfo(node.op).name, " '", ov.name, "': ", err);
    if (profile) {
      CUDA_CALL("profiling", api().stream_sync(stream_, ERRBUF));
      profile->push_back(NodeProfile{opInfo(node.op).name, "cuda", "",
                                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                                     costs_[&node - spec_.nodes.data()].flops()});
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
  std::vector<int> position(spec_.values.size(), -1);
  for (size_t i = 0; i < spec_.inputs.size(); ++i) position[spec_.inputs[i]] = (int)i;
  for (const GraphNode& node : spec_.nodes) {
    const bool emb = node.op == Op::Embedding, sel = node.op == Op::SelectRows;
    if (!emb && !sel) continue;
    const int32_t idxId = emb ? node.inputs[0] : node.inputs[1];
    if (position[idxId] < 0) continue;
    const Tensor& t = inputs[position[idxId]];
    const int64_t* ids = reinterpret_cast<const int64_t*>(t.data());
    const Shape& table = spec_.values[node.inputs[emb ? 1 : 0]].shape;
    const int64_t limit = emb ? table[0] : table[1];
    for (int64_t i = 0; i < t.numel(); ++i)
      check(ids[i] >= 0 && ids[i] < limit, "ERR_ONESTEP_VALUE", emb ? "embedding: id " : "select_rows: index ", ids[i], " at position ", i,
            " is outside [0, ", limit, ")");
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    CUDA_CALL("copying inputs to the GPU", api().copy_to_device(data_[spec_.inputs[i]], inputs[i].data(), inputs[i].nbytes(), stream_, ERRBUF));

  if (profile) {
    launchNodes(profile);
  } else {
    if (!graphExec_ && !captureFailed_) {
      char err[512] = {0};
      if (api().capture_begin(stream_, err, sizeof(err)) == 0) {
        try {
          launchNodes(nullptr);
        } catch (...) {
          void* discard = nullptr;
          api().capture_end(stream_, &discard, err, sizeof(err));
          if (discard) api().graph_destroy(discard);
          throw;
        }
        if (api().capture_end(stream_, &graphExec_, err, sizeof(err)) != 0) {
          graphExec_ = nullptr;
          captureFailed_ = true;  // run node by node from now on
        }
      } else {
        captureFailed_ = true;
      }
    }
    for (int rep = 0; rep < std::max(1, repeat); ++rep) {
      if (graphExec_) CUDA_CALL("launching the CUDA graph", api().graph_launch(graphExec_, stream_, ERRBUF));
      else launchNodes(nullptr);
    }
  }
  std::vector<Tensor> results;
  for (int32_t id : spec_.outputs) {
    const GraphValue& v = spec_.values[id];
    Tensor t = Tensor::empty(v.dtype, v.shape);
    CUDA_CALL("copying outputs from the GPU", api().copy_to_host(t.mutableData(), data_[aliasOf_[id]], t.nbytes(), stream_, ERRBUF));
    results.push_back(std::move(t));
  }
  CUDA_CALL("running the graph on the GPU", api().stream_sync(stream_, ERRBUF));
  return results;
}

}  // namespace onestep
