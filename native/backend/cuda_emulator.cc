// An emulated CUDA backend: the C table of kernels/onestep_cuda_api.h implemented on the CPU
// ("device" memory is host memory, nodes run the CPU kernels, capture records nodes and launch
// replays them). Selected by ONESTEP_CUDA_EMULATE=1, it lets CI exercise everything on the host
// side of the CUDA path (the executor: weight upload and conversion, arena binding, graph
// capture and replay, index checks, errors) without a GPU. It says nothing about the kernels.
// ONESTEP_CUDA_EMULATE_WITHOUT=op,op,... leaves those ops out of the table (supports_node says no),
// so that the executor's fallback to the CPU can be tested on any graph.
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

// The ops left out (ONESTEP_CUDA_EMULATE_WITHOUT), or the problem with that variable.
struct Without {
  std::vector<bool> left;
  std::string problem;
};

const Without& without() {
  static const Without w = [] {
    Without r;
    r.left.assign((size_t)Op::Count, false);
    const char* env = std::getenv("ONESTEP_CUDA_EMULATE_WITHOUT");
    std::string list = env ? env : "";
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
        r.problem = "ONESTEP_CUDA_EMULATE_WITHOUT: no op named '" + name + "'";
        break;
      }
      r.left[found] = true;
    }
    return r;
  }();
  return w;
}

int probe(int* count, char* err, size_t errlen) {
  if (count) *count = 1;
  if (!without().problem.empty()) {
    writeError(err, errlen, without().problem);
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
  for (int i = 0; i < n.n_inputs; ++i) {
    r->node.inputs.push_back(n.inputs[i].data ? i : -1);
    r->in.push_back(n.inputs[i].data ? ref(n.inputs[i]) : TensorRef{});
  }
  r->out = ref(n.output);
  return r;
}

int execute(const Recorded& r, char* err, size_t errlen) {
  try {
    cpuKernel(r.node.op)(r.node, r.in, r.out);
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
  if (without().left[n->op]) {
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
  if (without().left[n->op]) {
    writeError(why, whylen, std::string(opInfo((Op)n->op).name) + " is left out of the emulated table (ONESTEP_CUDA_EMULATE_WITHOUT)");
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

const onestep_cuda_api kEmulated = {ONESTEP_CUDA_ABI, buildInfo,   probe,   deviceInfo,   emuAlloc,     emuRelease,  memInfo,
                                    streamCreate,     streamDestroy, streamSync, copy,     copy,         convert,     runNode,
                                    supportsNode,     planNode,         mathLibraries, captureBegin,     captureEnd,  graphLaunch, graphDestroy};

}  // namespace

const onestep_cuda_api* emulatedCudaApi() { return &kEmulated; }

}  // namespace onestep
