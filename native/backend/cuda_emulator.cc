// An emulated CUDA backend: the C table of kernels/onestep_cuda_api.h implemented on the CPU
// ("device" memory is host memory, nodes run the CPU kernels, capture records nodes and launch
// replays them). Selected by ONESTEP_CUDA_EMULATE=1, it lets CI exercise everything on the host
// side of the CUDA path (the executor: weight upload and conversion, arena binding, graph
// capture and replay, index checks, errors) without a GPU. It says nothing about the kernels.
// ONESTEP_CUDA_EMULATE_WITHOUT=op,op,... leaves those ops out of the table (supports_node says no),
// so that the executor's fallback to the CPU can be tested on any graph. Activations the executor
// stores in 16 bits are converted to float32 around each CPU kernel (the kernels read weights in
// any float type); ONESTEP_CUDA_EMULATE_F32=op,op,... lists the ops whose nodes refuse 16-bit
// activations (default: scheduler_step, whose latents the library keeps float32), so that the
// executor's choice of storage can be tested on any graph.
#include "cuda_emulator.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../core/half.h"
#include "../graph/kernels.h"

namespace onestep {

namespace {

struct Recorded {
  GraphNode node;
  std::vector<TensorRef> in;
  TensorRef out;
  std::vector<std::unique_ptr<Shape>> shapes;  // what the refs point at
  // 16-bit activations: the device tensors, read into / written from float32 copies around the kernel
  std::vector<std::pair<TensorRef, std::vector<float>>> halfIn;  // by input (a null ref: none)
  TensorRef halfOut;
  std::vector<float> outCopy;
};

struct EmuStream {
  bool capturing = false;
  std::vector<std::shared_ptr<Recorded>> captured;
};

struct EmuGraph {
  std::vector<std::shared_ptr<Recorded>> nodes;
};

void writeError(char* err, size_t errlen, const std::string& msg) {
  if (err && errlen) std::snprintf(err, errlen, "%s", msg.c_str());
}

const char* buildInfo() { return "emulated on the CPU (ONESTEP_CUDA_EMULATE=1)"; }

// A list of op names in an environment variable (ONESTEP_CUDA_EMULATE_WITHOUT, ..._F32), or the
// problem with it.
struct OpList {
  std::vector<bool> listed;
  std::string problem;
};

OpList parseOps(const char* variable, const char* fallback) {
  OpList r;
  r.listed.assign((size_t)Op::Count, false);
  const char* env = std::getenv(variable);
  std::string list = env ? env : fallback;
  size_t at = 0;
  while (at <= list.size() && !list.empty()) {
    const size_t comma = std::min(list.find(',', at), list.size());
    const std::string name = list.substr(at, comma - at);
    at = comma + 1;
    if (name.empty()) continue;
    int found = -1;
    for (int i = 0; i < (int)Op::Count; ++i)
      if (name == opInfo((Op)i).name) found = i;
    if (found < 0) {
      r.problem = std::string(variable) + ": no op named '" + name + "'";
      break;
    }
    r.listed[found] = true;
  }
  return r;
}

// The ops left out of the table.
const OpList& without() {
  static const OpList w = parseOps("ONESTEP_CUDA_EMULATE_WITHOUT", "");
  return w;
}
// The ops that refuse 16-bit activations.
const OpList& f32Only() {
  static const OpList w = parseOps("ONESTEP_CUDA_EMULATE_F32", "scheduler_step");
  return w;
}

bool isHalf(int32_t d) { return d == ONESTEP_CUDA_F16 || d == ONESTEP_CUDA_BF16; }

// Inputs the CPU kernels read in any float type: GEMM weights and embedding tables.
bool weightSlot(int op, int i) { return i == 1 && (op == (int)Op::Linear || op == (int)Op::Conv2d || op == (int)Op::Embedding); }

int probe(int* count, char* err, size_t errlen) {
  if (count) *count = 1;
  for (const OpList* l : {&without(), &f32Only()})
    if (!l->problem.empty()) {
      writeError(err, errlen, l->problem);
      return 1;
    }
  return 0;
}

int deviceInfo(int index, onestep_cuda_device_info* out, char* err, size_t errlen) {
  if (index != 0 || !out) {
    writeError(err, errlen, "no such device");
    return 1;
  }
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "%s", "emulated CUDA device (CPU)");
  out->total_memory = out->free_memory = uint64_t(1) << 34;
  out->cc_major = 9;
  out->multiprocessors = 1;
  return 0;
}

int emuAlloc(size_t bytes, void** out, char* err, size_t errlen) {
  if (!out) return 1;
  // a poisoned fill: the executor must write everything it later reads
  *out = std::malloc(bytes ? bytes : 1);
  if (!*out) {
    writeError(err, errlen, "out of memory: emulated allocation failed");
    return 1;
  }
  std::memset(*out, 0x7f, bytes);
  return 0;
}

void emuRelease(void* p) { std::free(p); }

int memInfo(uint64_t* f, uint64_t* t, char*, size_t) {
  if (f) *f = uint64_t(1) << 34;
  if (t) *t = uint64_t(1) << 34;
  return 0;
}

int streamCreate(void** out, char*, size_t) {
  *out = new EmuStream();
  return 0;
}

void streamDestroy(void* s) { delete static_cast<EmuStream*>(s); }

int streamSync(void*, char*, size_t) { return 0; }

int copy(void* dst, const void* src, size_t bytes, void* s, char* err, size_t errlen) {
  if (s && static_cast<EmuStream*>(s)->capturing) {
    writeError(err, errlen, "copies are not captured");
    return 1;
  }
  if (bytes) std::memcpy(dst, src, bytes);
  return 0;
}

int convert(void* dst, int32_t dd, const void* src, int32_t sd, int64_t n, void*, char* err, size_t errlen) {
  auto load = [&](int64_t i) -> float {
    if (sd == ONESTEP_CUDA_F16) return halfToFloat(static_cast<const uint16_t*>(src)[i]);
    if (sd == ONESTEP_CUDA_BF16) return bf16ToFloat(static_cast<const uint16_t*>(src)[i]);
    return static_cast<const float*>(src)[i];
  };
  if (sd == ONESTEP_CUDA_I64 || dd == ONESTEP_CUDA_I64) {
    writeError(err, errlen, "convert: only F32, F16 and BF16");
    return 1;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float v = load(i);
    if (dd == ONESTEP_CUDA_F16) static_cast<uint16_t*>(dst)[i] = floatToHalf(v);
    else if (dd == ONESTEP_CUDA_BF16) static_cast<uint16_t*>(dst)[i] = floatToBf16(v);
    else static_cast<float*>(dst)[i] = v;
  }
  return 0;
}

std::shared_ptr<Recorded> record(const onestep_cuda_node& n) {
  auto r = std::make_shared<Recorded>();
  r->node.op = static_cast<Op>(n.op);
  r->node.attrs.assign(n.attrs, n.attrs + n.n_attrs);
  auto ref = [&](const onestep_cuda_tensor& t) {
    r->shapes.push_back(std::make_unique<Shape>(t.shape, t.shape + t.rank));
    return TensorRef{t.data, static_cast<DType>(t.dtype), r->shapes.back().get()};
  };
  r->halfIn.resize(n.n_inputs);
  for (int i = 0; i < n.n_inputs; ++i) {
    r->node.inputs.push_back(n.inputs[i].data ? i : -1);
    r->in.push_back(n.inputs[i].data ? ref(n.inputs[i]) : TensorRef{});
    if (n.inputs[i].data && isHalf(n.inputs[i].dtype) && !weightSlot(n.op, i)) {
      r->halfIn[i].first = r->in.back();
      r->halfIn[i].second.resize((size_t)shapeNumel(*r->in.back().shape));
      r->in.back() = TensorRef{r->halfIn[i].second.data(), DType::F32, r->in.back().shape};
    }
  }
  r->out = ref(n.output);
  if (isHalf(n.output.dtype)) {
    r->halfOut = r->out;
    r->outCopy.resize((size_t)shapeNumel(*r->out.shape));
    r->out = TensorRef{r->outCopy.data(), DType::F32, r->out.shape};
  }
  return r;
}

void toFloat(const TensorRef& t, float* dst) {
  const uint16_t* src = static_cast<const uint16_t*>(t.data);
  const int64_t n = shapeNumel(*t.shape);
  for (int64_t i = 0; i < n; ++i) dst[i] = t.dtype == DType::F16 ? halfToFloat(src[i]) : bf16ToFloat(src[i]);
}

void fromFloat(const float* src, const TensorRef& t) {
  uint16_t* dst = static_cast<uint16_t*>(t.data);
  const int64_t n = shapeNumel(*t.shape);
  for (int64_t i = 0; i < n; ++i) dst[i] = t.dtype == DType::F16 ? floatToHalf(src[i]) : floatToBf16(src[i]);
}

int execute(Recorded& r, char* err, size_t errlen) {
  try {
    for (auto& [dev, copy] : r.halfIn)
      if (dev.data) toFloat(dev, copy.data());
    cpuKernel(r.node.op)(r.node, r.in, r.out);
    if (r.halfOut.data) fromFloat(r.outCopy.data(), r.halfOut);
    return 0;
  } catch (const std::exception& e) {
    writeError(err, errlen, e.what());
    return 1;
  }
}

int runNode(const onestep_cuda_node* n, void* s, char* err, size_t errlen) {
  if (!n || n->op < 0 || n->op >= (int)Op::Count) {
    writeError(err, errlen, "run_node: bad node");
    return 1;
  }
  if (n->op == (int)Op::Reshape) return 0;
  if (without().listed[n->op]) {
    writeError(err, errlen, std::string(opInfo((Op)n->op).name) + " was run, but it is left out of the emulated table");
    return 1;
  }
  auto r = record(*n);
  EmuStream* st = static_cast<EmuStream*>(s);
  if (st && st->capturing) {
    st->captured.push_back(r);
    return 0;
  }
  return execute(*r, err, errlen);
}

int supportsNode(const onestep_cuda_node* n, char* why, size_t whylen) {
  if (!n || n->op < 0 || n->op >= (int)Op::Count) {
    writeError(why, whylen, "supports_node: bad node");
    return 0;
  }
  if (without().listed[n->op]) {
    writeError(why, whylen, std::string(opInfo((Op)n->op).name) + " is left out of the emulated table (ONESTEP_CUDA_EMULATE_WITHOUT)");
    return 0;
  }
  bool half = isHalf(n->output.dtype);
  for (int i = 0; i < n->n_inputs && i < ONESTEP_CUDA_MAX_INPUTS; ++i) half = half || (isHalf(n->inputs[i].dtype) && !weightSlot(n->op, i));
  if (half && f32Only().listed[n->op]) {
    writeError(why, whylen, std::string(opInfo((Op)n->op).name) + " takes float32 activations only here (ONESTEP_CUDA_EMULATE_F32)");
    return 0;
  }
  return 1;
}

// One algorithm per op (the CPU kernel), no scratch.
int planNode(const onestep_cuda_node* n, onestep_cuda_node_plan* out, char* err, size_t errlen) {
  if (!out || supportsNode(n, err, errlen) != 1) return 1;
  std::memset(out, 0, sizeof(*out));
  std::snprintf(out->name, sizeof(out->name), "emulated");
  return 0;
}

const char* mathLibraries() { return "[]"; }

int captureBegin(void* s, char*, size_t) {
  auto* st = static_cast<EmuStream*>(s);
  st->capturing = true;
  st->captured.clear();
  return 0;
}

int captureEnd(void* s, void** out, char*, size_t) {
  auto* st = static_cast<EmuStream*>(s);
  st->capturing = false;
  auto* g = new EmuGraph();
  g->nodes.swap(st->captured);
  *out = g;
  return 0;
}

int graphLaunch(void* g, void*, char* err, size_t errlen) {
  for (const auto& r : static_cast<EmuGraph*>(g)->nodes)
    if (execute(*r, err, errlen) != 0) return 1;
  return 0;
}

void graphDestroy(void* g) { delete static_cast<EmuGraph*>(g); }

// The table's LoRA fusion on the CPU: the same contract as kernels/lora.cu (float32 sums, one rounding).
int loraFuse(const onestep_cuda_tensor* out, const onestep_cuda_tensor* base, int32_t nParts, const onestep_cuda_tensor* ups,
             const onestep_cuda_tensor* downs, const float* factors, int64_t cin, void* s, char* err, size_t errlen) {
  if (s && static_cast<EmuStream*>(s)->capturing) {
    writeError(err, errlen, "lora_fuse is not captured");
    return 1;
  }
  if (nParts > ONESTEP_CUDA_MAX_LORA_PARTS) {
    writeError(err, errlen, "lora_fuse: more adapters on one weight than the table takes");
    return 1;
  }
  if (!out || !base || !out->data || !base->data || out->rank < 2 || nParts < 0 || (nParts > 0 && (!ups || !downs || !factors))) {
    writeError(err, errlen, "lora_fuse: bad arguments");
    return 1;
  }
  const Shape shape(out->shape, out->shape + out->rank);
  const int64_t N = shape[0], total = shapeNumel(shape), K = N ? total / N : 0, khw = cin > 0 ? K / cin : 1;
  auto load = [](const onestep_cuda_tensor& t, int64_t i) -> float {
    if (t.dtype == ONESTEP_CUDA_F16) return halfToFloat(static_cast<const uint16_t*>(t.data)[i]);
    if (t.dtype == ONESTEP_CUDA_BF16) return bf16ToFloat(static_cast<const uint16_t*>(t.data)[i]);
    return static_cast<const float*>(t.data)[i];
  };
  std::vector<float> acc((size_t)total);
  for (int64_t i = 0; i < total; ++i) acc[i] = load(*base, i);
  for (int32_t p = 0; p < nParts; ++p) {
    const int64_t r = N ? shapeNumel(Shape(ups[p].shape, ups[p].shape + ups[p].rank)) / N : 0;
    if (r <= 0 || shapeNumel(Shape(downs[p].shape, downs[p].shape + downs[p].rank)) != r * K) {
      writeError(err, errlen, "lora_fuse: up must be [N, r] and down [r, K]");
      return 1;
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t j = 0; j < K; ++j) {
        const int64_t col = cin > 0 ? (j % cin) * khw + j / cin : j;
        float sum = 0;
        for (int64_t k = 0; k < r; ++k) sum += factors[p] * load(ups[p], n * r + k) * load(downs[p], k * K + col);
        acc[n * K + j] += sum;
      }
  }
  for (int64_t i = 0; i < total; ++i) {
    if (out->dtype == ONESTEP_CUDA_F16) static_cast<uint16_t*>(out->data)[i] = floatToHalf(acc[i]);
    else if (out->dtype == ONESTEP_CUDA_BF16) static_cast<uint16_t*>(out->data)[i] = floatToBf16(acc[i]);
    else static_cast<float*>(out->data)[i] = acc[i];
  }
  return 0;
}

const onestep_cuda_api kEmulated = {ONESTEP_CUDA_ABI, buildInfo,   probe,   deviceInfo,   emuAlloc,     emuRelease,  memInfo,
                                    streamCreate,     streamDestroy, streamSync, copy,     copy,         convert,     runNode,
                                    supportsNode,     planNode,         mathLibraries, captureBegin,     captureEnd,  graphLaunch, graphDestroy,
                                    loraFuse};

}  // namespace

const onestep_cuda_api* emulatedCudaApi() { return &kEmulated; }

}  // namespace onestep
