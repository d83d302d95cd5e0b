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
// A = W with TRANSA = T, B = X, D = Y^T, the bias indexed by D's rows (the output features), fp32
// compute. X stored in the weight's type (fp16, or bf16 for graphs that need fp32's range) is read
// where it is; a float32 X is rounded into the node's workspace first. D is Y as stored (float32 or
// 16-bit). Epilogue: BIAS when the bias has D's type (cuBLASLt's default bias type; the executor
// uploads biases so); a residual of D's type without activation is C with beta = 1; what remains
// (an activation, then the residual; a bias of another type) is one elementwise kernel after. The
// algorithm comes from the heuristic once per shape (cached).
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

// The heuristic's choice per matmul description (shapes, layouts, types, epilogue, alignments).
struct Key {
  LtMatmul m;
  auto tie() const {
    return std::tie(m.m, m.n, m.k, m.transA, m.transB, m.lda, m.ldb, m.ldd, m.batch, m.strideA, m.strideB, m.strideD, m.operand, m.out, m.bias,
                    m.accumulate, m.alignA, m.alignB, m.alignCD);
  }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};
struct Choice {
  onestep_lt::Algo algo;
  uint64_t workspace = 0;  // cuBLASLt's own
};
ChoiceCache<Key, Choice> gCache;

int ltType(int dtype) { return dtype == ONESTEP_CUDA_BF16 ? onestep_lt::kR16BF : dtype == ONESTEP_CUDA_F16 ? onestep_lt::kR16F : onestep_lt::kR32F; }

// Descriptors of one matmul; destroyed with it.
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

// A column-major layout of rows x cols with leading dimension ld, and its batches.
Status layout(Lt& lt, onestep_lt::Layout* l, int type, int64_t rows, int64_t cols, int64_t ld, int32_t batch, int64_t stride, const char* what) {
  Status st = ltCall(lt.LayoutCreate(l, type, (uint64_t)rows, (uint64_t)cols, ld), what);
  if (st.good() && batch > 1) {
    st = ltCall(lt.LayoutSetAttribute(*l, onestep_lt::kLayoutBatchCount, &batch, sizeof(batch)), "set BATCH_COUNT");
    if (st.good()) st = ltCall(lt.LayoutSetAttribute(*l, onestep_lt::kLayoutStridedBatchOffset, &stride, sizeof(stride)), "set STRIDED_BATCH_OFFSET");
  }
  return st;
}

Status describe(Descs& g, const LtMatmul& m, const void* bias) {
  Lt& lt = g.lt;
  const int32_t transA = m.transA ? onestep_lt::kOpT : onestep_lt::kOpN, transB = m.transB ? onestep_lt::kOpT : onestep_lt::kOpN;
  const uint32_t epilogue = m.bias ? onestep_lt::kEpilogueBias : onestep_lt::kEpilogueDefault;
  Status st = ltCall(lt.MatmulDescCreate(&g.desc, onestep_lt::kCompute32F, onestep_lt::kR32F), "MatmulDescCreate");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescTransA, &transA, sizeof(transA)), "set TRANSA");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescTransB, &transB, sizeof(transB)), "set TRANSB");
  if (st.good()) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "set EPILOGUE");
  if (st.good() && m.bias) st = ltCall(lt.MatmulDescSetAttribute(g.desc, onestep_lt::kDescBiasPointer, &bias, sizeof(bias)), "set BIAS_POINTER");
  const int t = ltType(m.operand);
  // op(A) is m x k, op(B) k x n: the stored layouts are their transposes where trans is set
  if (st.good()) st = layout(lt, &g.a, t, m.transA ? m.k : m.m, m.transA ? m.m : m.k, m.lda, m.batch, m.strideA, "MatrixLayoutCreate A");
  if (st.good()) st = layout(lt, &g.b, t, m.transB ? m.n : m.k, m.transB ? m.k : m.n, m.ldb, m.batch, m.strideB, "MatrixLayoutCreate B");
  // C and D: float32 or the 16-bit type, the bias (when any) of the same type
  if (st.good()) st = layout(lt, &g.c, ltType(m.out), m.m, m.n, m.ldd, m.batch, m.strideD, "MatrixLayoutCreate C");
  if (st.good()) st = layout(lt, &g.d, ltType(m.out), m.m, m.n, m.ldd, m.batch, m.strideD, "MatrixLayoutCreate D");
  return st;
}

Status choose(const LtMatmul& m, Choice* out) {
  const Key k{m};
  if (gCache.find(k, out)) return Status::ok();
  Lt& lt = lib();
  Descs g(lt);
  static const float kDummy = 0.0f;  // the heuristic reads no data; a non-null bias pointer for the epilogue
  Status st = describe(g, m, &kDummy);
  onestep_lt::Preference pref = nullptr;
  if (st.good()) st = ltCall(lt.PreferenceCreate(&pref), "MatmulPreferenceCreate");
  const uint64_t maxWs = kMaxLtWorkspace;
  const uint32_t align[4] = {m.alignA, m.alignB, m.alignCD, m.alignCD};
  if (st.good()) st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMaxWorkspaceBytes, &maxWs, sizeof(maxWs)), "set MAX_WORKSPACE_BYTES");
  for (int i = 0; i < 4 && st.good(); ++i)
    st = ltCall(lt.PreferenceSetAttribute(pref, onestep_lt::kPrefMinAlignA + i, &align[i], sizeof(align[i])), "set MIN_ALIGNMENT");
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
  gCache.put(k, c);
  *out = c;
  return Status::ok();
}

// y = act(y + bias) + residual in place, over [M, N] (what the matmul's epilogue did not do)
__global__ void epilogueKernel(ActOut y, ActIn yIn, ActIn bias, ActIn residual, int act, int64_t n, int64_t N) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = yIn[i];
    if (bias) v += bias[i % N];
    v = applyAct(act, v);
    if (residual) v += residual[i];
    y[i] = v;
  }
}

bool aligned(const void* p, uint64_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

// What of a linear layer cuBLASLt does itself (the rest is the epilogue kernel's).
bool xInPlace(const LtGemm& g) { return g.x == g.operand; }
bool ltBias(const LtGemm& g) { return g.bias && g.biasType == g.out; }
bool ltResidual(const LtGemm& g) { return g.residual && g.act == kNone && g.residualType == g.out; }
uint64_t xScratch(const LtGemm& g) { return xInPlace(g) ? 0 : scratchBytes((uint64_t)g.M * g.K * 2); }

// Linear: Y[M, N] = X[M, K] W[N, K]^T row-major is D[N, M] = W X^T column-major.
LtMatmul linearMatmul(const LtGemm& g) {
  LtMatmul m;
  m.m = g.N, m.n = g.M, m.k = g.K;
  m.transA = true, m.transB = false;
  m.lda = g.K, m.ldb = g.K, m.ldd = g.N;
  m.operand = g.operand;
  m.out = g.out;
  m.bias = ltBias(g);
  m.accumulate = ltResidual(g);  // the residual as C
  m.alignA = kArenaAlign;        // the weight: uploaded (cudaMalloc, 256), or computed by the graph (in the arena, 64)
  m.alignB = xInPlace(g) ? kArenaAlign : (uint32_t)kAlign;  // X in the arena, or rounded into the workspace
  m.alignCD = kArenaAlign;
  return m;
}

}  // namespace

bool cublasLtUsable() { return lib().ok(); }

uint32_t ltAlignment(uint64_t byteOffset, uint32_t base) {
  uint32_t a = base;
  while (a > 1 && byteOffset % a) a /= 2;
  return a;
}

Status cublasLtMatmulPlan(const LtMatmul& m, uint64_t* workspaceBytes) {
  if (!lib().ok()) return Status::fail("cuBLASLt is not loaded: " + lib().found.reason);
  Choice c;
  const Status st = choose(m, &c);
  if (st.good()) *workspaceBytes = c.workspace;
  return st;
}

Status cublasLtMatmulRun(const LtMatmul& m, float alpha, const void* A, const void* B, const void* C, void* D, const void* bias, void* workspace,
                         uint64_t workspaceBytes, cudaStream_t s) {
  Lt& lt = lib();
  if (!lt.ok()) return Status::fail("cuBLASLt is not loaded: " + lt.found.reason);
  Choice c;
  Status st = choose(m, &c);
  if (!st.good()) return st;
  if (c.workspace && (!workspace || workspaceBytes < c.workspace || !aligned(workspace, kAlign)))
    return Status::fail("cuBLASLt matmul: its workspace (" + std::to_string(workspaceBytes) + " bytes) is smaller than planned (" +
                        std::to_string(c.workspace) + ")");
  if (!aligned(A, m.alignA) || !aligned(B, m.alignB) || !aligned(D, m.alignCD) || (m.accumulate && !aligned(C, m.alignCD)))
    return Status::fail("cuBLASLt matmul: an operand is less aligned than the algorithm was chosen for");
  Descs d(lt);
  st = describe(d, m, bias);
  if (!st.good()) return st;
  const float beta = m.accumulate ? 1.0f : 0.0f;
  const void* cPtr = m.accumulate ? static_cast<const void*>(C) : static_cast<const void*>(D);
  return ltCall(lt.Matmul(lt.handle, d.desc, &alpha, A, d.a, B, d.b, &beta, cPtr, d.c, D, d.d, &c.algo, c.workspace ? workspace : nullptr,
                          c.workspace, (onestep_lt::Stream)s),
                "Matmul");
}

Status cublasLtPlan(const LtGemm& g, uint64_t* workspaceBytes) {
  uint64_t ws = 0;
  const Status st = cublasLtMatmulPlan(linearMatmul(g), &ws);
  if (st.good()) *workspaceBytes = xScratch(g) + ws;
  return st;
}

Status cublasLtRun(const LtGemm& g, ActIn x, const void* w, ActIn bias, ActIn residual, ActOut y, void* workspace, uint64_t workspaceBytes,
                   cudaStream_t s) {
  if (g.M == 0 || g.N == 0) return Status::ok();
  if (x.dt != g.x || y.dt != g.out || (g.bias && bias.dt != g.biasType) || (g.residual && residual.dt != g.residualType))
    return Status::fail("cuBLASLt GEMM: the tensors' types differ from the plan's");
  const uint64_t xBytes = xScratch(g);
  if (xBytes && (!workspace || workspaceBytes < xBytes)) return Status::fail("cuBLASLt GEMM: the node has no workspace for its rounded input");
  const void* xOperand = x.p;
  if (xBytes) {
    Status st = launchConvert(workspace, g.operand, x.p, x.dt, g.M * g.K, s);
    if (!st.good()) return st;
    xOperand = workspace;
  }
  const LtMatmul m = linearMatmul(g);
  Status st = cublasLtMatmulRun(m, 1.0f, w, xOperand, m.accumulate ? residual.p : nullptr, y.p, m.bias ? bias.p : nullptr,
                                static_cast<uint8_t*>(workspace) + xBytes, workspaceBytes - xBytes, s);
  if (!st.good()) return st;
  const ActIn postBias = m.bias ? ActIn{nullptr, 0} : bias, postResidual = m.accumulate ? ActIn{nullptr, 0} : residual;
  if (g.act != kNone || postBias || postResidual) {
    const int64_t n = g.M * g.N;
    ONESTEP_LAUNCH(epilogueKernel, gridFor(n, 256), 256, 0, s)(y, ActIn{y.p, y.dt}, postBias, postResidual, g.act, n, g.N);
    return launched("linear (cuBLASLt) epilogue");
  }
  return Status::ok();
}

std::string cublasLtInfoJson() {
  Lt& lt = lib();
  return libraryJson("cuBLASLt", lt.ok(), lt.version, lt.found, "linear, 1x1 conv2d, attention with heads above 64");
}

}  // namespace onestep_cuda
