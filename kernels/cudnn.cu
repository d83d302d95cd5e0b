// cuDNN 9, loaded at run time, for convolutions (gemm.cu decides per node at plan time; without
// the library the own implicit-GEMM kernel runs).
//
// Loading (once per process, at the first plan or info() that asks; vendor/loader.h's search):
// ONESTEP_CUDNN (a file; "none" turns it off), the CUDA toolkit, Python's nvidia/cudnn wheel, the
// loader's path: libcudnn.so.9, opened from its own folder so that it finds its sub-libraries. A
// library that lacks a function, is not cuDNN 9, was built for another CUDA major or cannot create
// a handle is skipped with the reason in info(). Under cusim only ONESTEP_CUDNN is tried (tests name
// the stand-in, kernels/sim/cudnn_sim.cc).
//
// The legacy convolution API (no graph building): NHWC tensors and a KRSC (NHWC) filter — the
// device layout of conv kernels, [Co, kh, kw, Ci] — cross-correlation, fp32 compute, tensor-op
// math. x and y are tensors of the weight's type (fp16, or bf16 in graphs that need fp32's range;
// cuDNN has no half-in / float-out configuration): an x stored so is read where it is, a float32
// one rounded into the node's workspace first; y is written in place when the output is stored in
// that type, else into the workspace; then one elementwise kernel adds the bias, the activation and
// the residual (in place, or into the float32 output). The algorithm is the fastest
// that cudnnFindConvolutionForwardAlgorithm measures, once per shape at plan time (cached for the
// process), within a workspace cap. The legacy API pads symmetrically only and does not upsample:
// a fused nearest upsampling or an asymmetric padding (the VAE encoder's downsampling) is
// materialised in the workspace with the rounded input (a memory pass that is small beside the
// convolution), cuDNN then padding nothing.
#include <dlfcn.h>

#include <map>
#include <mutex>
#include <tuple>

#include "ops.cuh"
#include "vendor/cudnn.h"
#include "vendor/loader.h"

namespace onestep_cuda {

namespace {

constexpr uint64_t kMaxDnnWorkspace = 256ull << 20;

struct Dnn {
#define ONESTEP_DNN_FIELD(name, symbol) onestep_dnn::name##Fn name = nullptr;
  ONESTEP_DNN_FUNCTIONS(ONESTEP_DNN_FIELD)
#undef ONESTEP_DNN_FIELD
  onestep_dnn::Handle handle = nullptr;
  size_t version = 0;
  VendorLibrary found;
  bool ok() const { return handle != nullptr; }
};

// cuDNN 9 reports its version as major * 10000 + minor * 100 + patch, its CUDA runtime as
// major * 1000 + minor * 10
Dnn load() {
  Dnn dnn;
  VendorSearch search;
  search.envVar = "ONESTEP_CUDNN";
  search.file = "libcudnn.so.9";
  search.wheelDirs = {"cudnn/lib"};
  search.accept = [&dnn](void* dl) -> std::string {
    Dnn c;
#define ONESTEP_DNN_RESOLVE(name, symbol)                               \
  c.name = reinterpret_cast<onestep_dnn::name##Fn>(dlsym(dl, #symbol)); \
  if (!c.name) return "it has no " #symbol;
    ONESTEP_DNN_FUNCTIONS(ONESTEP_DNN_RESOLVE)
#undef ONESTEP_DNN_RESOLVE
    c.version = c.GetVersion();
    if (c.version / 10000 != 9) return "version " + versionText(c.version) + ", but onestep uses cuDNN 9";
    const size_t cudart = c.GetCudartVersion();
    if ((int)(cudart / 1000) != runtimeMajor())
      return "cuDNN " + versionText(c.version) + " was built for CUDA " + std::to_string(cudart / 1000) + "." + std::to_string(cudart / 10 % 100) +
             ", but this build runs CUDA " + std::to_string(runtimeMajor());
    const int st = c.Create(&c.handle);
    if (st != onestep_dnn::kSuccess || !c.handle) return std::string("cudnnCreate failed: ") + c.GetErrorString(st);
    dnn = c;
    return "";
  };
  dnn.found = openVendorLibrary(search);
  if (!dnn.found.dl) dnn.handle = nullptr;
  return dnn;
}

Dnn& lib() {
  static Dnn dnn = load();
  return dnn;
}

// The handle is shared: its stream is set per call, so calls on it are serialised.
std::mutex gHandleMutex;

struct Key {
  DnnConv c;
  bool operator<(const Key& o) const {
    return std::tie(c.B, c.H, c.W, c.C, c.Co, c.kh, c.kw, c.sh, c.sw, c.ph, c.pw, c.operand) <
           std::tie(o.c.B, o.c.H, o.c.W, o.c.C, o.c.Co, o.c.kh, o.c.kw, o.c.sh, o.c.sw, o.c.ph, o.c.pw, o.c.operand);
  }
};
struct Choice {
  int algo = 0;
  uint64_t workspace = 0;
};
ChoiceCache<Key, Choice> gCache;

Status dnnCall(Dnn& d, int st, const char* what) {
  if (st == onestep_dnn::kSuccess) return Status::ok();
  return Status::fail(std::string("cuDNN ") + what + " failed: " + d.GetErrorString(st) + " (" + std::to_string(st) + ")");
}

int dnnType(int dtype) { return dtype == ONESTEP_CUDA_BF16 ? onestep_dnn::kBfloat16 : onestep_dnn::kHalf; }

struct Descs {
  Dnn& d;
  onestep_dnn::TensorDesc x = nullptr, y = nullptr;
  onestep_dnn::FilterDesc w = nullptr;
  onestep_dnn::ConvDesc conv = nullptr;
  explicit Descs(Dnn& dnn) : d(dnn) {}
  ~Descs() {
    if (x) d.DestroyTensorDescriptor(x);
    if (y) d.DestroyTensorDescriptor(y);
    if (w) d.DestroyFilterDescriptor(w);
    if (conv) d.DestroyConvolutionDescriptor(conv);
  }
};

Status describe(Descs& g, const DnnConv& c) {
  Dnn& d = g.d;
  const int t = dnnType(c.operand);
  Status st = dnnCall(d, d.CreateTensorDescriptor(&g.x), "CreateTensorDescriptor");
  if (st.good()) st = dnnCall(d, d.SetTensor4dDescriptor(g.x, onestep_dnn::kNhwc, t, c.B, c.C, c.H, c.W), "SetTensor4dDescriptor x");
  if (st.good()) st = dnnCall(d, d.CreateTensorDescriptor(&g.y), "CreateTensorDescriptor");
  if (st.good()) st = dnnCall(d, d.SetTensor4dDescriptor(g.y, onestep_dnn::kNhwc, t, c.B, c.Co, c.Ho, c.Wo), "SetTensor4dDescriptor y");
  if (st.good()) st = dnnCall(d, d.CreateFilterDescriptor(&g.w), "CreateFilterDescriptor");
  if (st.good()) st = dnnCall(d, d.SetFilter4dDescriptor(g.w, t, onestep_dnn::kNhwc, c.Co, c.C, c.kh, c.kw), "SetFilter4dDescriptor");
  if (st.good()) st = dnnCall(d, d.CreateConvolutionDescriptor(&g.conv), "CreateConvolutionDescriptor");
  if (st.good())
    st = dnnCall(d, d.SetConvolution2dDescriptor(g.conv, c.ph, c.pw, c.sh, c.sw, 1, 1, onestep_dnn::kCrossCorrelation, onestep_dnn::kFloat),
                 "SetConvolution2dDescriptor");
  if (st.good()) st = dnnCall(d, d.SetConvolutionMathType(g.conv, onestep_dnn::kTensorOpMath), "SetConvolutionMathType");
  return st;
}

Status choose(const DnnConv& c, Choice* out) {
  const Key k{c};
  if (gCache.find(k, out)) return Status::ok();
  Dnn& d = lib();
  Descs g(d);
  Status st = describe(g, c);
  if (!st.good()) return st;
  onestep_dnn::FwdAlgoPerf perf[onestep_dnn::kFwdAlgoCount];
  std::memset(perf, 0, sizeof(perf));
  int returned = 0;
  {
    // times every algorithm on buffers cuDNN allocates itself (at plan time, outside any capture)
    std::lock_guard<std::mutex> lock(gHandleMutex);
    static cudaStream_t planStream = [] {
      cudaStream_t ps = nullptr;
      if (cudaStreamCreateWithFlags(&ps, cudaStreamNonBlocking) != cudaSuccess) ps = nullptr;
      cudaGetLastError();
      return ps;
    }();
    if (!planStream) return Status::fail("cuDNN: cannot create the stream its algorithm search runs on");
    st = dnnCall(d, d.SetStream(d.handle, (onestep_dnn::Stream)planStream), "SetStream");
    if (st.good())
      st = dnnCall(d, d.FindConvolutionForwardAlgorithm(d.handle, g.x, g.w, g.conv, g.y, onestep_dnn::kFwdAlgoCount, &returned, perf),
                   "FindConvolutionForwardAlgorithm");
    if (st.good()) st = cudaStatus(cudaStreamSynchronize(planStream), "cuDNN's algorithm search");
  }
  if (!st.good()) return st;
  for (int i = 0; i < returned && i < onestep_dnn::kFwdAlgoCount; ++i) {  // fastest first
    if (perf[i].status != onestep_dnn::kSuccess || perf[i].memory > kMaxDnnWorkspace) continue;
    Choice choice;
    choice.algo = perf[i].algo;
    choice.workspace = perf[i].memory;
    gCache.put(k, choice);
    *out = choice;
    return Status::ok();
  }
  return Status::fail("cuDNN has no algorithm for this convolution within " + std::to_string(kMaxDnnWorkspace >> 20) + " MiB of workspace");
}

// dst [B, H, W, C] (operand type) = src [B, srcH, srcW, C] nearest-upsampled by `up`, placed at
// (padTop, padLeft), zeros around it
template <class T>
__global__ void materializeKernel(T* __restrict__ dst, ActIn src, int64_t n, int H, int W, int C, int srcH, int srcW, int up,
                                  int padTop, int padLeft) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t c = i % C, px = i / C, b = px / ((int64_t)W * H);
    const int yy = (int)(px / W % H) - padTop, xx = (int)(px % W) - padLeft;
    const bool inside = yy >= 0 && yy < srcH * up && xx >= 0 && xx < srcW * up;
    dst[i] = toOperand<T>(inside ? src[((b * srcH + yy / up) * srcW + xx / up) * C + c] : 0.0f);
  }
}

// y = act(conv + bias) + residual, from the operand-typed convolution result (which may be y itself)
__global__ void dnnEpilogueKernel(ActOut y, ActIn conv, ActIn bias, ActIn residual, int act, int64_t n, int64_t channels) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = conv[i];
    if (bias) v += bias[i % channels];
    v = applyAct(act, v);
    if (residual) v += residual[i];
    y[i] = v;
  }
}

// The workspace's parts: x rounded (and materialised) unless it is read in place; y in the operand
// type unless the output is stored so
uint64_t xScratch(const DnnConv& c) { return c.materialize || c.x != c.operand ? scratchBytes((uint64_t)c.B * c.H * c.W * c.C * 2) : 0; }
uint64_t yScratch(const DnnConv& c) { return c.out != c.operand ? scratchBytes((uint64_t)c.B * c.Ho * c.Wo * c.Co * 2) : 0; }

}  // namespace

bool cudnnUsable() { return lib().ok(); }

Status cudnnPlan(const DnnConv& c, uint64_t* workspaceBytes) {
  if (!lib().ok()) return Status::fail("cuDNN is not loaded: " + lib().found.reason);
  Choice choice;
  const Status st = choose(c, &choice);
  if (!st.good()) return st;
  *workspaceBytes = xScratch(c) + yScratch(c) + choice.workspace;
  return Status::ok();
}

Status cudnnRun(const DnnConv& c, ActIn x, const void* w, ActIn bias, ActIn residual, int act, ActOut y, void* workspace, uint64_t workspaceBytes,
                cudaStream_t s) {
  const int64_t outN = (int64_t)c.B * c.Ho * c.Wo * c.Co;
  if (outN == 0) return Status::ok();
  Dnn& d = lib();
  if (!d.ok()) return Status::fail("cuDNN is not loaded: " + d.found.reason);
  Choice choice;
  Status st = choose(c, &choice);
  if (!st.good()) return st;
  if (x.dt != c.x || y.dt != c.out) return Status::fail("cuDNN convolution: the tensors' types differ from the plan's");
  const uint64_t xBytes = xScratch(c), yBytes = yScratch(c);
  if ((xBytes + yBytes + choice.workspace) && (!workspace || workspaceBytes < xBytes + yBytes + choice.workspace))
    return Status::fail("cuDNN convolution: the node's workspace (" + std::to_string(workspaceBytes) + " bytes) is smaller than planned (" +
                        std::to_string(xBytes + yBytes + choice.workspace) + ")");
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  void *xr = xBytes ? ws : const_cast<void*>(x.p), *yr = yBytes ? ws + xBytes : y.p, *algoWs = choice.workspace ? ws + xBytes + yBytes : nullptr;
  if (!xBytes) {
    st = Status::ok();  // read in place
  } else if (c.materialize) {  // the upsampled / padded input, rounded to the operand type
    const int64_t n = (int64_t)c.B * c.H * c.W * c.C;
    if (c.operand == ONESTEP_CUDA_BF16)
      ONESTEP_LAUNCH(materializeKernel<__nv_bfloat16>, gridFor(n, 256), 256, 0, s)(static_cast<__nv_bfloat16*>(xr), x, n, c.H, c.W, c.C, c.srcH,
                                                                               c.srcW, c.up, c.padTop, c.padLeft);
    else
      ONESTEP_LAUNCH(materializeKernel<__half>, gridFor(n, 256), 256, 0, s)(static_cast<__half*>(xr), x, n, c.H, c.W, c.C, c.srcH, c.srcW, c.up,
                                                                        c.padTop, c.padLeft);
    st = launched("conv2d (cuDNN) input");
  } else {
    st = launchConvert(xr, c.operand, x.p, x.dt, (int64_t)c.B * c.H * c.W * c.C, s);
  }
  if (!st.good()) return st;
  Descs g(d);
  st = describe(g, c);
  if (!st.good()) return st;
  const float alpha = 1.0f, beta = 0.0f;
  {
    std::lock_guard<std::mutex> lock(gHandleMutex);
    st = dnnCall(d, d.SetStream(d.handle, (onestep_dnn::Stream)s), "SetStream");
    if (st.good())
      st = dnnCall(d, d.ConvolutionForward(d.handle, &alpha, g.x, xr, g.w, w, g.conv, choice.algo, algoWs, choice.workspace, &beta, g.y, yr),
                   "ConvolutionForward");
  }
  if (!st.good()) return st;
  if (!yBytes && !bias && !residual && act == kNone) return Status::ok();  // y is the result
  ONESTEP_LAUNCH(dnnEpilogueKernel, gridFor(outN, 256), 256, 0, s)(y, ActIn{yr, c.operand}, bias, residual, act, outN, (int64_t)c.Co);
  return launched("conv2d (cuDNN) epilogue");
}

std::string cudnnInfoJson() {
  Dnn& d = lib();
  return libraryJson("cuDNN", d.ok(), d.version, d.found, "conv2d");
}

}  // namespace onestep_cuda
