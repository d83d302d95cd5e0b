// Running a validated, planned graph on the GPU through the CUDA backend library's C table:
// constants (weights) uploaded once per process and shared between graphs (GEMM / conv weights
// as fp16, the rest as stored), activations in one device arena laid out by the graph's plan,
// one stream per graph, and the node sequence captured once as a CUDA graph and replayed.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "../graph/graph.h"

namespace onestep {

struct DeviceBuffer;

class CudaExecutor {
 public:
  // aliasOf / offset / arenaBytes: the graph's storage plan (graph.cc).
  CudaExecutor(const GraphSpec& spec, const std::vector<OpCost>& costs, const std::vector<int32_t>& aliasOf,
               const std::vector<int64_t>& offset, size_t arenaBytes);
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  // Same contract as Graph::run (the caller serialises calls).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile, int repeat = 1);
  std::vector<NodePlacement> placements() const;

 private:
  void launchNodes(std::vector<NodeProfile>* profile);

  const GraphSpec& spec_;
  const std::vector<OpCost>& costs_;
  const std::vector<int32_t>& aliasOf_;
  void* stream_ = nullptr;
  std::shared_ptr<DeviceBuffer> arena_;
  std::vector<std::shared_ptr<DeviceBuffer>> consts_;  // by value id (null when not a constant)
  std::vector<std::shared_ptr<DeviceBuffer>> inputs_;  // by position in spec.inputs
  std::vector<void*> data_;                            // device address of every value
  std::vector<DType> deviceDtype_;                     // dtype of every value on the device
  std::vector<Shape> deviceShape_;                     // its shape there (conv kernels: [Co, kh, kw, Ci])
  void* graphExec_ = nullptr;
  bool captureFailed_ = false;
};

// Drops the device copies of a host tensor's memory (after it was rewritten in place, e.g. a
// LoRA re-fusion); graphs built afterwards upload it again. No-op without CUDA.
void forgetDeviceCopies(const void* hostData);

}  // namespace onestep
