// JS side of the graph executor: createGraph(spec) -> Graph with an async run().
#pragma once

#include <napi.h>

#include <memory>

#include "../graph/graph.h"

namespace onestep {
namespace napi {

class JsGraph : public Napi::ObjectWrap<JsGraph> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit JsGraph(const Napi::CallbackInfo& info);
  ~JsGraph() override;

 private:
  Napi::Value Run(const Napi::CallbackInfo& info);
  Napi::Value ArenaBytes(const Napi::CallbackInfo& info);
  Napi::Value NodeCount(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value Placements(const Napi::CallbackInfo& info);

 public:
  // A JS Graph holding `graph` (on the JS thread).
  static Napi::Object Wrap(Napi::Env env, std::shared_ptr<Graph> graph);

 private:

  std::shared_ptr<Graph> graph_;
  int64_t reported_ = 0;
};

// createGraph({ values, consts, nodes, inputs, outputs }, device?) -> Promise<Graph>: the spec is read
// at once (malformed objects throw); validation, planning and weight preparation run off the JS
// thread (errors reject)
Napi::Value CreateGraph(const Napi::CallbackInfo& info);
// opSchema() -> { ops: [{ name, inputs: [{ name, required }], attrs: [{ name, kind, default, min?, max? }] }]
// in op-code order, acts: activation names in code order } (native/graph/op_defs.h)
Napi::Value OpSchema(const Napi::CallbackInfo& info);
// inferNode(op, inputs: ({ dtype, shape } | null)[], attrs: number[]) -> { shape, macs: [conv, linear,
// attentionQK, attentionPV], bytes }; throws ERR_ONESTEP_GRAPH as the graph would for that node
Napi::Value InferNode(const Napi::CallbackInfo& info);
// setWinogradPolicy('auto' | 'always' | 'never') / winogradPolicy(): the CPU plan's conv2d choice
Napi::Value SetWinogradPolicy(const Napi::CallbackInfo& info);
Napi::Value GetWinogradPolicy(const Napi::CallbackInfo& info);
// gemmInfo() -> { kernel, bf16Kernel, bf16DepthBlock, narrow }, gemmSelect(name) / gemmSelectBf16(name) -> boolean, gemmBench(M, N, K, dtype, seconds) -> GFLOP/s
Napi::Value GemmInfo(const Napi::CallbackInfo& info);
Napi::Value GemmSelect(const Napi::CallbackInfo& info);
Napi::Value GemmSelectBf16(const Napi::CallbackInfo& info);
Napi::Value GemmBench(const Napi::CallbackInfo& info);
Napi::Value GemmPeak(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
