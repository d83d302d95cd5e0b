// cuBLASLt, loaded at run time, for linear layers and 1x1 convolutions (gemm.cu decides per node at
// plan time; without the library the own GEMM kernel runs).
//
// Loading (once per process, at the first plan or info() that asks; vendor/loader.h's search):
// ONESTEP_CUBLASLT (a file; "none" turns the library off), the CUDA toolkit, Python's nvidia/cu<major>
// and nvidia/cublas wheels, the loader's path: libcublasLt.so.<major of the CUDA runtime this library
// was built with>. A library that lacks a function, reports another major version or cannot create
// a handle is skipped with the reason in info(). Under cusim only ONESTEP_CUBLASLT is tried (tests
// name the stand-in, kernels/sim/cublaslt_sim.cc).
//
// A GEMM Y[M, N] = X[M, K] W[N, K]^T (row-major) is cuBLASLt's column-major D[N, M] = W X^T:
// A = W with TRANSA = T, B = X, D = Y^T, the bias indexed by D's rows (the output features). X is
// float32 in the arena: it is rounded to the weight's type (fp16, or bf16 for graphs that need
// fp32's range) into the node's workspace first; D is float32 with fp32 compute. Epilogue: BIAS;
// a residual without activation is C with beta = 1; an activation (and then the residual) is one
// elementwise kernel after. The algorithm comes from the heuristic once per shape (cached).
#include <dlfcn.h>

#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "ops.cuh"
#include "vendor/cublaslt.h"
#include "vendor/loader.h"

namespace onestep_cuda {

namespace {

constexpr uint64_t kMaxLtWorkspace = 32ull << 20;  // NVIDIA's recommendation for Hopper
constexpr uint64_t kAlign = kScratchAlign;
constexpr uint32_t kArenaAlign = 64;  // the graph's arena aligns every value to 64 bytes (graph.cc)

struct Lt {
#define ONESTEP_LT_FIELD(name, symbol) onestep_lt::name##Fn name = nullptr;
  ONESTEP_LT_FUNCTIONS(ONESTEP_LT_FIELD)
#undef ONESTEP_LT_FIELD
  onestep_lt::Handle handle = nullptr;
  size_t version = 0;
  VendorLibrary found;
  bool ok() const { return handle != nullptr; }
};

Lt load() {
  Lt lt;
  VendorSearch search;
  search.envVar = "ONESTEP_CUBLASLT";
  search.file = "libcublasLt.so." + std::to_string(runtimeMajor());
  search.wheelDirs = {"cu" + std::to_string(runtimeMajor()) + "/lib", "cublas/lib"};
  search.accept = [&lt](void* dl) -> std::string {
    Lt c;
#define ONESTEP_LT_RESOLVE(name, symbol)                               \
  c.name = reinterpret_cast<onestep_lt::name##Fn>(dlsym(dl, #symbol)); \
  if (!c.name) return "it has no " #symbol;
    ONESTEP_LT_FUNCTIONS(ONESTEP_LT_RESOLVE)
#undef ONESTEP_LT_RESOLVE
    c.version = c.GetVersion();
    if ((int)(c.version / 10000) != runtimeMajor())
      return "version " + versionText(c.version) + ", but this build needs cuBLASLt " + std::to_string(runtimeMajor()) + ".x";
    const int st = c.Create(&c.handle);
    if (st != onestep_lt::kSuccess || !c.handle) return "cublasLtCreate failed (status " + std::to_string(st) + ")";
    lt = c;
    return "";
  };
  lt.found = openVendorLibrary(search);
  if (!lt.found.dl) lt.handle = nullptr;
  return lt;
}

Lt& lib() {
  static Lt lt = load();
  return lt;
}

// The heuristic's choice per shape.
struct Key {
  int64_t M, N, K;
  int operand;
  bool bias, residualInC;
  bool operator<(const Key& o) const {
    return std::tie(M, N, K, operand, bias, residualInC) < std::tie(o.M, o.N, o.K, o.operand, o.bias, o.residualInC);
  }
};
struct Choice {
  onestep_lt::Algo algo;
  uint64_t workspace = 0;  // cuBLASLt's own
};
std::mutex gCacheMutex;
std::map<Key, Choice> gCache;

int ltType(int dtype) { return dtype == ONESTEP_CUDA_BF16 ? onestep_lt::kR16BF : onestep_lt::kR16F; }

// Descriptors of one GEMM; destroyed with it.
struct Descs {
  Lt& lt;
  onestep_lt::MatmulDesc desc = nullptr;
  onestep_lt::Layout a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  explicit Descs(Lt& l) : lt(l) {}
  ~Descs() {
    if (a) lt.LayoutDestroy(a);
    if (b) lt.LayoutDestroy(b);
    if (c) lt.LayoutDestroy(c);
    if (d) lt.LayoutDestroy(d);
    if (desc) lt.MatmulDescDestroy(desc);
  }
};

Status ltCall(int st, const char* what) {
  if (st == onestep_lt::kSuccess) return Status::ok();
  return Status::fail(std::string("cuBLASLt ") + what + " failed (status " + std::to_string(st) + ")");
}

Status describeGemm(Descs& g, const Key& k, const float* bias) {
  Lt& lt = g.lt;
  const int32_t transA = onestep_lt::kOpT, transB = onestep_lt::kOpN;
  const uint32_t epilogue = k.bias ? onestep_lt::kEpilogueBias : onestep_lt::kEpilogueDefault;
  Status st = ltCall(lt.MatmulDescCreate(&g.desc, onestep_lt::kCompute32F, onestep_lt::kR32F), "MatmulDescCreate");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescTransA, &transA, sizeof(transA)), "set TRANSA");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescTransB, &transB, sizeof(transB)), "set TRANSB");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "set EPILOGUE");
  if (st.good() && k.bias) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescBiasPointer, &bias, sizeof(bias)), "set BIAS_POINTER");
  const int t = ltType(k.operand);
  // column-major: A = W as [K, N] (ld K), B = X as [K, M] (ld K), C = D = Y^T as [N, M] (ld N)
  if (st.good()) st = ltCall(lt.LayoutCreate(&g.a, t, (uint64_t)k.K, (uint64_t)k.N, k.K), "MatrixLayoutCreate A");
  if (st.good()) st = ltCall(lt.LayoutCreate(&g.b, t, (uint64_t)k.K, (uint64_t)k.M, k.K), "MatrixLayoutCreate B");
  if (st.good()) st = ltCall(lt.LayoutCreate(&g.c, onestep_lt::kR32F, (uint64_t)k.N, (uint64_t)k.M, k.N), "MatrixLayoutCreate C");
  if (st.good()) st = ltCall(lt.LayoutCreate(&g.d, onestep_lt::kR32F, (uint64_t)k.N, (uint64_t)k.M, k.N), "MatrixLayoutCreate D");
  return st;
}

Status choose(const Key& k, Choice* out) {
  {
    std::lock_guard<std::mutex> lock(gCacheMutex);
    auto it = gCache.find(k);
    if (it != gCache.end()) {
      *out = it->second;
      return Status::ok();
    }
  }
  Lt& lt = lib();
  Descs g(lt);
  static const float kDummy = 0.0f;  // the heuristic reads no data; a non-null bias pointer for the epilogue
  Status st = describeGemm(g, k, &kDummy);
  onestep_lt::Preference pref = nullptr;
  if (st.good()) st = ltCall(lt.PreferenceCreate(&pref), "MatmulPreferenceCreate");
  const uint64_t maxWs = kMaxLtWorkspace;
  const uint32_t alignAB = (uint32_t)kAlign, alignCD = kArenaAlign;  // weights and the rounded X: cudaMalloc / 256; C, D: the arena
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMaxWorkspaceBytes, &maxWs, sizeof(maxWs)), "set MAX_WORKSPACE_BYTES");
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMinAlignA, &alignAB, sizeof(alignAB)), "set MIN_ALIGNMENT_A");
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMinAlignB, &alignAB, sizeof(alignAB)), "set MIN_ALIGNMENT_B");
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMinAlignC, &alignCD, sizeof(alignCD)), "set MIN_ALIGNMENT_C");
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMinAlignD, &alignCD, sizeof(alignCD)), "set MIN_ALIGNMENT_D");
  onestep_lt::HeuristicResult result;
  std::memset(&result, 0, sizeof(result));
  int returned = 0;
  if (st.good()) st = ltCall(lt.AlgoGetHeuristic(lt.handle, g.desc, g.a, g.b, g.c, g.d, pref, 1, &result, &returned), "MatmulAlgoGetHeuristic");
  if (pref) lt.PreferenceDestroy(pref);
  if (!st.good()) return st;
  if (returned < 1 || result.state != onestep_lt::kSuccess) return Status::fail("cuBLASLt has no algorithm for this GEMM");
  if (result.workspaceSize > maxWs) return Status::fail("cuBLASLt's algorithm wants more workspace than it was offered");
  Choice c;
  c.algo = result.algo;
  c.workspace = result.workspaceSize;
  std::lock_guard<std::mutex> lock(gCacheMutex);
  gCache[k] = c;
  *out = c;
  return Status::ok();
}

__global__ void actResidualKernel(float* __restrict__ y, const float* __restrict__ residual, int act, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = applyAct(act, y[i]);
    if (residual) v += residual[i];
    y[i] = v;
  }
}

bool aligned(const void* p, uint64_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace

bool cublasLtUsable() { return lib().ok(); }

Status cublasLtPlan(const LtGemm& g, uint64_t* workspaceBytes) {
  if (!lib().ok()) return Status::fail("cuBLASLt is not loaded: " + lib().found.reason);
  Choice c;
  const Key k{g.M, g.N, g.K, g.operand, g.bias, g.residual && g.act == kNone};
  const Status st = choose(k, &c);
  if (!st.good()) return st;
  *workspaceBytes = scratchBytes((uint64_t)g.M * g.K * 2) + c.workspace;
  return Status::ok();
}

Status cublasLtRun(const LtGemm& g, const float* x, const void* w, const float* bias, const float* residual, float* y, void* workspace,
                   uint64_t workspaceBytes, cudaStream_t s) {
  if (g.M == 0 || g.N == 0) return Status::ok();
  Lt& lt = lib();
  if (!lt.ok()) return Status::fail("cuBLASLt is not loaded: " + lt.found.reason);
  const bool residualInC = g.residual && g.act == kNone;
  const Key k{g.M, g.N, g.K, g.operand, g.bias, residualInC};
  Choice c;
  Status st = choose(k, &c);
  if (!st.good()) return st;
  const uint64_t xBytes = scratchBytes((uint64_t)g.M * g.K * 2);
  if (!workspace || workspaceBytes < xBytes + c.workspace)
    return Status::fail("cuBLASLt GEMM: the node's workspace (" + std::to_string(workspaceBytes) + " bytes) is smaller than planned (" +
                        std::to_string(xBytes + c.workspace) + ")");
  if (!aligned(w, kAlign) || !aligned(workspace, kAlign) || !aligned(y, kArenaAlign) || (residual && !aligned(residual, kArenaAlign)))
    return Status::fail("cuBLASLt GEMM: an operand is less aligned than the algorithm was chosen for");
  void* xr = workspace;
  st = launchConvert(xr, g.operand, x, ONESTEP_CUDA_F32, g.M * g.K, s);
  if (!st.good()) return st;
  Descs d(lt);
  st = describeGemm(d, k, bias);
  if (!st.good()) return st;
  const float alpha = 1.0f, beta = residualInC ? 1.0f : 0.0f;
  const void* cPtr = residualInC ? static_cast<const void*>(residual) : static_cast<const void*>(y);
  void* ltWs = c.workspace ? static_cast<uint8_t*>(workspace) + xBytes : nullptr;
  st = ltCall(lt.Matmul(lt.handle, d.desc, &alpha, w, d.a, xr, d.b, &beta, cPtr, d.c, y, d.d, &c.algo, ltWs, c.workspace, (onestep_lt::Stream)s),
              "Matmul");
  if (!st.good()) return st;
  if (g.act != kNone) {
    const int64_t n = g.M * g.N;
    ONESTEP_LAUNCH(actResidualKernel, gridFor(n, 256), 256, 0, s)(y, g.residual ? residual : nullptr, g.act, n);
    return launched("linear (cuBLASLt) activation");
  }
  return Status::ok();
}

std::string cublasLtInfoJson() {
  Lt& lt = lib();
  return libraryJson("cuBLASLt", lt.ok(), lt.version, lt.found, "linear, 1x1 conv2d");
}

}  // namespace onestep_cuda
