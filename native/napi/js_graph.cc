#include "js_graph.h"

#include "../backend/cuda_loader.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "../cpu/gemm.h"
#include "../cpu/cpu_backend.h"
#include "../cpu/lora.h"
#include "../cpu/vecmath.h"
#include "../cpu/winograd.h"
#include "addon_data.h"
#include "js_tensor.h"
#include "util.h"

namespace onestep {
namespace napi {

namespace {

Napi::Array getArray(Napi::Object o, const char* key, const char* what) {
  Napi::Value v = o.Get(key);
  if (!v.IsArray()) fail("ERR_ONESTEP_ARGUMENT", what, ".", key, " must be an array");
  return v.As<Napi::Array>();
}

int32_t intValue(Napi::Value v, const char* what, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) fail("ERR_ONESTEP_ARGUMENT", what, " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d == (double)(int64_t)d) || d < (double)lo || d > (double)hi)
    fail("ERR_ONESTEP_ARGUMENT", what, " must be an integer in [", lo, ", ", hi, "], got ", d);
  return (int32_t)d;
}

std::vector<int32_t> intList(Napi::Array a, const char* what, int64_t lo, int64_t hi) {
  std::vector<int32_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(intValue(a.Get(i), what, lo, hi));
  return out;
}

GraphSpec parseSpec(Napi::Object spec) {
  GraphSpec g;
  Napi::Array values = getArray(spec, "values", "spec");
  Napi::Array consts = getArray(spec, "consts", "spec");
  Napi::Array nodes = getArray(spec, "nodes", "spec");
  const int64_t nv = values.Length();
  for (uint32_t i = 0; i < consts.Length(); ++i) g.consts.push_back(JsTensor::FromValue(consts.Get(i), "spec.consts[]"));
  for (uint32_t i = 0; i < values.Length(); ++i) {
    if (!values.Get(i).IsObject()) fail("ERR_ONESTEP_ARGUMENT", "spec.values[", i, "] must be an object");
    Napi::Object v = values.Get(i).As<Napi::Object>();
    GraphValue gv;
    gv.kind = static_cast<ValueKind>(intValue(v.Get("kind"), "value kind", 0, 2));
    if (!v.Get("dtype").IsString()) fail("ERR_ONESTEP_ARGUMENT", "spec.values[", i, "].dtype must be a string");
    gv.dtype = parseDType(v.Get("dtype").As<Napi::String>().Utf8Value());
    gv.shape = shapeArg(v.Get("shape"), "value shape");
    if (v.Get("name").IsString()) gv.name = v.Get("name").As<Napi::String>().Utf8Value();
    if (gv.kind == ValueKind::Const) gv.constIndex = intValue(v.Get("const"), "value const", 0, (int64_t)consts.Length() - 1);
    g.values.push_back(std::move(gv));
  }
  const Napi::Value op = spec.Get("gemmOperand");
  if (!op.IsUndefined()) {
    if (!op.IsString()) fail("ERR_ONESTEP_ARGUMENT", "spec.gemmOperand must be 'F16' or 'BF16'");
    const std::string o = op.As<Napi::String>().Utf8Value();
    check(o == "F16" || o == "BF16", "ERR_ONESTEP_ARGUMENT", "spec.gemmOperand must be 'F16' or 'BF16', got '", o, "'");
    g.gemmOperand = parseDType(o);
  }
  const Napi::Value cop = spec.Get("cpuGemmOperand");
  if (!cop.IsUndefined()) {
    if (!cop.IsString()) fail("ERR_ONESTEP_ARGUMENT", "spec.cpuGemmOperand must be 'F32' or 'BF16'");
    const std::string o = cop.As<Napi::String>().Utf8Value();
    check(o == "F32" || o == "BF16", "ERR_ONESTEP_ARGUMENT", "spec.cpuGemmOperand must be 'F32' or 'BF16', got '", o, "'");
    if (o == "BF16")
      check(gemmBf16KernelName() != nullptr, "ERR_ONESTEP_UNSUPPORTED",
            "bf16 precision needs a CPU with AVX512_BF16 or AMX-BF16; this one has neither (use precision 'fp32')");
    g.cpuGemmOperand = parseDType(o);
  }
  for (uint32_t i = 0; i < nodes.Length(); ++i) {
    if (!nodes.Get(i).IsObject()) fail("ERR_ONESTEP_ARGUMENT", "spec.nodes[", i, "] must be an object");
    Napi::Object n = nodes.Get(i).As<Napi::Object>();
    GraphNode node;
    node.op = static_cast<Op>(intValue(n.Get("op"), "node op", 0, opCount() - 1));
    node.inputs = intList(getArray(n, "inputs", "node"), "node input", -1, nv - 1);
    Napi::Array attrs = getArray(n, "attrs", "node");
    for (uint32_t k = 0; k < attrs.Length(); ++k) {
      if (!attrs.Get(k).IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "node ", i, ": attributes must be numbers");
      node.attrs.push_back(attrs.Get(k).As<Napi::Number>().DoubleValue());
    }
    node.output = intValue(n.Get("output"), "node output", 0, nv - 1);
    g.nodes.push_back(std::move(node));
  }
  g.inputs = intList(getArray(spec, "inputs", "spec"), "graph input", 0, nv - 1);
  g.outputs = intList(getArray(spec, "outputs", "spec"), "graph output", 0, nv - 1);
  return g;
}

Napi::Object makeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err.Value();
}

// An AsyncWorker that settles a promise: work() runs off the JS thread (what it throws becomes the
// rejection, with its code: nothing may throw across the thread boundary), result() makes the
// resolution back on it.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, const char* doing) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), doing_(doing) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void work() = 0;
  virtual Napi::Value result(Napi::Env env) = 0;

 private:
  void Execute() override {
    try {
      work();
    } catch (const Error& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "ERR_ONESTEP_OUT_OF_MEMORY";
      message_ = std::string("out of host memory while ") + doing_;
    } catch (const std::exception& e) {
      code_ = "ERR_ONESTEP_INTERNAL";
      message_ = std::string("internal error: ") + e.what();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!code_.empty()) {
      deferred_.Reject(makeError(env, code_, message_));
      return;
    }
    try {
      deferred_.Resolve(result(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  const char* doing_;
  std::string code_, message_;
};

class RunWorker : public PromiseWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Graph> graph, std::vector<Tensor> inputs, bool profile, int repeat)
      : PromiseWorker(env, "running the graph"), graph_(std::move(graph)), inputs_(std::move(inputs)), profile_(profile), repeat_(repeat) {}

 private:
  void work() override { outputs_ = graph_->run(inputs_, profile_ ? &profileData_ : nullptr, repeat_); }

  Napi::Value result(Napi::Env env) override {
    Napi::Array outs = Napi::Array::New(env, outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) outs.Set((uint32_t)i, JsTensor::Wrap(env, std::move(outputs_[i])));
    if (profile_) {
      Napi::Array prof = Napi::Array::New(env, profileData_.size());
      for (size_t i = 0; i < profileData_.size(); ++i) {
        Napi::Object p = Napi::Object::New(env);
        p.Set("op", profileData_[i].op);
        p.Set("backend", profileData_[i].backend);
        p.Set("algorithm", profileData_[i].algorithm);
        p.Set("seconds", profileData_[i].seconds);
        p.Set("flops", profileData_[i].flops);
        if (profileData_[i].cpuSeconds >= 0) p.Set("cpuSeconds", profileData_[i].cpuSeconds);
        prof.Set((uint32_t)i, p);
      }
      outs.Set("profile", prof);
    }
    return outs;
  }

  std::shared_ptr<Graph> graph_;
  std::vector<Tensor> inputs_;
  bool profile_;
  int repeat_;
  std::vector<Tensor> outputs_;
  std::vector<NodeProfile> profileData_;
};

// Builds a Graph (validation, storage plan) and prepares it (the backends' plans) off the JS thread.
class CompileWorker : public PromiseWorker {
 public:
  CompileWorker(Napi::Env env, GraphSpec spec, Device device) : PromiseWorker(env, "compiling the graph"), spec_(std::move(spec)), device_(device) {}

 private:
  void work() override {
    graph_ = std::make_shared<Graph>(std::move(spec_), device_);
    graph_->prepare();
  }

  Napi::Value result(Napi::Env env) override { return JsGraph::Wrap(env, std::move(graph_)); }

  GraphSpec spec_;
  Device device_;
  std::shared_ptr<Graph> graph_;
};

}  // namespace

Napi::Object JsGraph::Wrap(Napi::Env env, std::shared_ptr<Graph> graph) {
  Napi::Object obj = addonData(env).graphCtor.New({constructToken(env)});
  JsGraph* self = Napi::ObjectWrap<JsGraph>::Unwrap(obj);
  self->reported_ = (int64_t)graph->arenaBytes();
  Napi::MemoryManagement::AdjustExternalMemory(env, self->reported_);
  self->graph_ = std::move(graph);
  return obj;
}

Napi::Value JsGraph::Placements(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!graph_) fail("ERR_ONESTEP_DISPOSED", "graph was disposed");
    const std::vector<NodePlacement> p = graph_->placements();
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", opInfo(graph_->spec().nodes[i].op).name);
      o.Set("backend", p[i].backend);
      o.Set("algorithm", p[i].algorithm);
      o.Set("fallback", p[i].fallback);
      if (p[i].fallback) o.Set("reason", p[i].reason);
      if (p[i].storage[0]) o.Set("storage", p[i].storage);
      out.Set((uint32_t)i, o);
    }
    return out;
  });
}

Napi::Function JsGraph::Define(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Graph",
                                 {
                                     InstanceMethod<&JsGraph::Run>("run"),
                                     InstanceAccessor<&JsGraph::ArenaBytes>("arenaBytes"),
                                     InstanceAccessor<&JsGraph::NodeCount>("nodeCount"),
                                     InstanceMethod<&JsGraph::Dispose>("dispose"),
                                     InstanceMethod<&JsGraph::Placements>("placements"),
                                 });
  addonData(env).graphCtor = Napi::Persistent(f);
  return f;
}

JsGraph::JsGraph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsGraph>(info) {
  if (!isConstructToken(info))
    throwJs(info.Env(), "ERR_ONESTEP_ARGUMENT", "Graph cannot be constructed from JS; use createGraph(spec)");
}

JsGraph::~JsGraph() {
  if (reported_) Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_);
}

Napi::Value JsGraph::Run(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    if (!graph_) fail("ERR_ONESTEP_DISPOSED", "graph was disposed");
    requireArgs(info, 1, "Graph.run");
    if (!info[0].IsArray()) fail("ERR_ONESTEP_ARGUMENT", "Graph.run: inputs must be an array of tensors");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<Tensor> inputs;
    for (uint32_t i = 0; i < a.Length(); ++i) {
      inputs.push_back(JsTensor::FromValue(a.Get(i), "Graph.run input"));
      ensureHostFused(inputs.back());
    }
    const bool hasOpts = info.Length() > 1 && info[1].IsObject();
    const bool profile = hasOpts && info[1].As<Napi::Object>().Get("profile").ToBoolean();
    int repeat = 1;
    if (hasOpts && info[1].As<Napi::Object>().Has("repeat")) {
      Napi::Value r = info[1].As<Napi::Object>().Get("repeat");
      if (!r.IsNumber() || r.As<Napi::Number>().DoubleValue() < 1 || r.As<Napi::Number>().DoubleValue() > 100000 ||
          r.As<Napi::Number>().DoubleValue() != (double)r.As<Napi::Number>().Int32Value())
        fail("ERR_ONESTEP_ARGUMENT", "Graph.run: repeat must be an integer in 1..100000");
      repeat = r.As<Napi::Number>().Int32Value();
    }
    auto* worker = new RunWorker(info.Env(), graph_, std::move(inputs), profile, repeat);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

Napi::Value JsGraph::ArenaBytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), graph_ ? (double)graph_->arenaBytes() : 0.0);
}

Napi::Value JsGraph::NodeCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), graph_ ? (double)graph_->nodeCount() : 0.0);
}

Napi::Value JsGraph::Dispose(const Napi::CallbackInfo& info) {
  graph_.reset();  // a run in flight keeps its own reference
  pruneDeferredFusions();
  if (reported_) {
    Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -reported_);
    reported_ = 0;
  }
  return info.Env().Undefined();
}

Napi::Value CreateGraph(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "createGraph");
    if (!info[0].IsObject()) fail("ERR_ONESTEP_ARGUMENT", "createGraph: spec must be an object");
    Device device = Device::Cpu;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      const std::string d = stringArg(info, 1, "createGraph");
      if (d == "cuda") {
        check(cudaApi() != nullptr, "ERR_ONESTEP_DEVICE", "device 'cuda' is not usable: ", loadCudaBackend("").reason);
        device = Device::Cuda;
      } else {
        check(d == "cpu", "ERR_ONESTEP_ARGUMENT", "createGraph: device must be 'cpu' or 'cuda', got '", d, "'");
      }
    }
    // reading the JS objects is all that happens here; validation, planning, derived weights and
    // uploads run on a worker thread
    auto* worker = new CompileWorker(info.Env(), parseSpec(info[0].As<Napi::Object>()), device);
    Napi::Promise p = worker->promise();
    worker->Queue();
    return p;
  });
}

Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  static const char* const kKinds[] = {"int", "bool", "act", "real", "bound", "positive"};
  Napi::Array ops = Napi::Array::New(env, opCount());
  for (int i = 0; i < opCount(); ++i) {
    const OpInfo& o = opInfo(static_cast<Op>(i));
    Napi::Object r = Napi::Object::New(env);
    r.Set("name", o.name);
    Napi::Array ins = Napi::Array::New(env, o.maxInputs);
    for (int k = 0; k < o.maxInputs; ++k) {
      Napi::Object d = Napi::Object::New(env);
      d.Set("name", o.inputs[k].name);
      d.Set("required", o.inputs[k].required);
      ins.Set((uint32_t)k, d);
    }
    r.Set("inputs", ins);
    Napi::Array attrs = Napi::Array::New(env, o.attrCount);
    for (int k = 0; k < o.attrCount; ++k) {
      const AttrDef& a = o.attrs[k];
      Napi::Object d = Napi::Object::New(env);
      d.Set("name", a.name);
      d.Set("kind", kKinds[(int)a.kind]);
      d.Set("default", std::isnan(a.dflt) ? env.Null() : Napi::Number::New(env, a.dflt));
      if (a.kind == AttrKind::Int) {
        d.Set("min", a.lo);
        d.Set("max", a.hi);
      }
      attrs.Set((uint32_t)k, d);
    }
    r.Set("attrs", attrs);
    ops.Set((uint32_t)i, r);
  }
  Napi::Array acts = Napi::Array::New(env, kActCount);
  for (int i = 0; i < kActCount; ++i) acts.Set((uint32_t)i, actName(static_cast<Act>(i)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("ops", ops);
  out.Set("acts", acts);
  return out;
}

Napi::Value InferNode(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 3, "inferNode");
    const Op op = static_cast<Op>(intValue(info[0], "inferNode: op", 0, opCount() - 1));
    if (!info[1].IsArray() || !info[2].IsArray()) fail("ERR_ONESTEP_ARGUMENT", "inferNode: inputs and attrs must be arrays");
    Napi::Array ins = info[1].As<Napi::Array>();
    std::vector<ValueDesc> descs(ins.Length());
    std::vector<const ValueDesc*> ptrs;
    for (uint32_t i = 0; i < ins.Length(); ++i) {
      Napi::Value v = ins.Get(i);
      if (v.IsNull() || v.IsUndefined()) {
        ptrs.push_back(nullptr);
        continue;
      }
      if (!v.IsObject()) fail("ERR_ONESTEP_ARGUMENT", "inferNode: inputs[", i, "] must be { dtype, shape } or null");
      Napi::Object o = v.As<Napi::Object>();
      if (!o.Get("dtype").IsString()) fail("ERR_ONESTEP_ARGUMENT", "inferNode: inputs[", i, "].dtype must be a string");
      descs[i] = ValueDesc{parseDType(o.Get("dtype").As<Napi::String>().Utf8Value()), shapeArg(o.Get("shape"), "inferNode: input shape")};
      ptrs.push_back(&descs[i]);
    }
    Napi::Array a = info[2].As<Napi::Array>();
    std::vector<double> attrs;
    for (uint32_t k = 0; k < a.Length(); ++k) {
      if (!a.Get(k).IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "inferNode: attributes must be numbers");
      attrs.push_back(a.Get(k).As<Napi::Number>().DoubleValue());
    }
    const NodeInfo r = inferNode(op, ptrs, attrs);
    Napi::Env env = info.Env();
    Napi::Object out = Napi::Object::New(env);
    Napi::Array shape = Napi::Array::New(env, r.shape.size());
    for (size_t i = 0; i < r.shape.size(); ++i) shape.Set((uint32_t)i, (double)r.shape[i]);
    out.Set("shape", shape);
    Napi::Array macs = Napi::Array::New(env, 4);
    macs.Set(0u, r.cost.convMacs);
    macs.Set(1u, r.cost.linearMacs);
    macs.Set(2u, r.cost.attentionQKMacs);
    macs.Set(3u, r.cost.attentionPVMacs);
    out.Set("macs", macs);
    out.Set("bytes", r.cost.bytes);
    return out;
  });
}

Napi::Value SetWinogradPolicy(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "setWinogradPolicy");
    const std::string p = stringArg(info, 0, "setWinogradPolicy");
    if (p == "auto") setWinogradPolicy(WinogradPolicy::Auto);
    else if (p == "always") setWinogradPolicy(WinogradPolicy::Always);
    else if (p == "never") setWinogradPolicy(WinogradPolicy::Never);
    else if (p == "f4x4") setWinogradPolicy(WinogradPolicy::AlwaysF4);
    else fail("ERR_ONESTEP_ARGUMENT", "setWinogradPolicy: policy must be 'auto', 'always', 'f4x4' or 'never', got '", p, "'");
    return info.Env().Undefined();
  });
}

Napi::Value GetWinogradPolicy(const Napi::CallbackInfo& info) {
  static const char* const kNames[] = {"auto", "always", "never", "f4x4"};
  return Napi::String::New(info.Env(), kNames[(int)winogradPolicy()]);
}

Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("kernel", gemmKernelName());
    const char* bf16 = gemmBf16KernelName();
    o.Set("bf16Kernel", bf16 ? Napi::Value(Napi::String::New(info.Env(), bf16)) : info.Env().Null());
    o.Set("bf16DepthBlock", Napi::Number::New(info.Env(), (double)gemmBf16DepthBlock()));
    o.Set("narrow", Napi::Boolean::New(info.Env(), gemmNarrowAvailable()));
    o.Set("vectorMath", vecMath().name);
    o.Set("winograd", winogradKernels().name);
    return o;
  });
}

Napi::Value GemmSelectBf16(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "gemmSelectBf16");
    return Napi::Boolean::New(info.Env(), gemmSelectBf16Kernel(stringArg(info, 0, "gemmSelectBf16").c_str()));
  });
}

Napi::Value GemmSelect(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "gemmSelect");
    return Napi::Boolean::New(info.Env(), gemmSelectKernel(stringArg(info, 0, "gemmSelect").c_str()));
  });
}

// gemmBench(M, N, K, dtype, seconds): times C = A * B^T with B [N, K] in dtype; returns GFLOP/s.
Napi::Value GemmBench(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 5, "gemmBench");
    const int64_t M = (int64_t)indexArg(info[0], "M"), N = (int64_t)indexArg(info[1], "N"), K = (int64_t)indexArg(info[2], "K");
    const DType dt = parseDType(stringArg(info, 3, "gemmBench"));
    if (!info[4].IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "gemmBench: seconds must be a number");
    const std::string schedule = info.Length() > 5 && !info[5].IsUndefined() ? stringArg(info, 5, "gemmBench") : "packed";
    return Napi::Number::New(info.Env(), gemmBenchmark(M, N, K, dt, info[4].As<Napi::Number>().DoubleValue(), schedule));
  });
}

// gemmPeak(seconds): the float32 kernel's FMA ceiling on all the pool's threads, in GFLOP/s.
Napi::Value GemmPeak(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&]() -> Napi::Value {
    requireArgs(info, 1, "gemmPeak");
    if (!info[0].IsNumber()) fail("ERR_ONESTEP_ARGUMENT", "gemmPeak: seconds must be a number");
    return Napi::Number::New(info.Env(), gemmFmaPeak(info[0].As<Napi::Number>().DoubleValue()));
  });
}

}  // namespace napi
}  // namespace onestep
