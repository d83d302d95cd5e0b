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
  friend Napi::Value CreateGraph(const Napi::CallbackInfo& info);

  std::shared_ptr<Graph> graph_;
  int64_t reported_ = 0;
};

// createGraph({ values, consts, nodes, inputs, outputs }) -> Graph
Napi::Value CreateGraph(const Napi::CallbackInfo& info);
// opSchema() -> { ops: [{ name, inputs: [{ name, required }], attrs: [{ name, kind, default, min?, max? }] }]
// in op-code order, acts: activation names in code order } (native/graph/op_defs.h)
Napi::Value OpSchema(const Napi::CallbackInfo& info);
// inferNode(op, inputs: ({ dtype, shape } | null)[], attrs: number[]) -> { shape, macs: [conv, linear,
// attentionQK, attentionPV], bytes }; throws ERR_ONESTEP_GRAPH as the graph would for that node
Napi::Value InferNode(const Napi::CallbackInfo& info);
// prepareConvWeight(w[Co,Ci,kh,kw]) -> [Co,kh,kw,Ci] in the same dtype
Napi::Value PrepareConvWeight(const Napi::CallbackInfo& info);
// prepareWinogradWeight(w[Co,3,3,Ci] prepared, any float dtype) -> F32 [16,Co,Ci] = G g G^T
Napi::Value PrepareWinogradWeight(const Napi::CallbackInfo& info);
// gemmInfo() -> { kernel }, gemmSelect(name) -> boolean, gemmBench(M, N, K, dtype, seconds) -> GFLOP/s
Napi::Value GemmInfo(const Napi::CallbackInfo& info);
Napi::Value GemmSelect(const Napi::CallbackInfo& info);
Napi::Value GemmBench(const Napi::CallbackInfo& info);

}  // namespace napi
}  // namespace onestep
