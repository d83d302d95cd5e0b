// Running a validated, planned graph on the GPU through the CUDA backend library's C table:
// constants (weights) uploaded once per process and shared between graphs (GEMM / conv weights
// as fp16, the rest as stored), activations in one device arena laid out by the graph's plan and
// stored in the graph's 16-bit type where the kernels take it (float32 elsewhere),
// one stream per graph, and each run of device nodes captured once as a CUDA graph and replayed.
//
// Per-node fallback: a node the library does not support (supports_node says why: no kernel for
// the op, or beyond its kernel's limits) or that the executor cannot hand it (a conv2d whose kernel
// is computed, or also read as another input) runs on the CPU backend, with its own plan. The graph
// is cut into segments of consecutive device / CPU nodes; the copies between them are planned once
// (each value crosses at most once each way, only where it is read on the other side), into a host
// mirror of the arena at the same offsets (so the lifetime plan holds there too). The arena is
// planned with each value's device size: values stored in 16 bits take half the bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../../kernels/onestep_cuda_api.h"
#include "../graph/graph.h"

namespace onestep {

struct DeviceBuffer;

class CudaExecutor {
 public:
  // aliasOf: the graph's storage roots (graph.cc); the executor plans its own arena (planArena)
  // with each value's size as stored on the device.
  CudaExecutor(const GraphSpec& spec, const std::vector<OpCost>& costs, const std::vector<int32_t>& aliasOf);
  // The device arena's bytes (activations as stored there).
  size_t arenaBytes() const { return arenaBytes_; }
  ~CudaExecutor();
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  // Same contract as Graph::run (the caller serialises calls).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile, int repeat = 1);
  std::vector<NodePlacement> placements() const;

 private:
  struct Segment {
    bool onCpu = false;
    std::vector<size_t> nodes;      // node indices, in order (no reshapes: views)
    std::vector<int32_t> toHost;    // storage roots copied to the host mirror before it
    std::vector<int32_t> toDevice;  // storage roots copied to the device arena before it
    void* exec = nullptr;           // its captured CUDA graph (device segments)
  };

  void planPlacement(size_t arenaBytes);
  void planNodes(DType act);
  bool chooseStorage(DType act, const std::vector<DType>& base);
  void describeNode(size_t index, onestep_cuda_node& n, bool withData) const;
  void launchDevice(const Segment& seg, std::vector<NodeProfile>* profile);
  void runCpu(const Segment& seg, const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile);
  void copyAcross(const Segment& seg, const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile);
  void* hostData(int32_t id, const std::vector<Tensor>& inputs) const;

  const GraphSpec& spec_;
  const std::vector<OpCost>& costs_;
  const std::vector<int32_t>& aliasOf_;
  std::vector<int64_t> offset_;  // arena offsets (the device's plan; the host mirror uses them too)
  size_t arenaBytes_ = 0;
  void* stream_ = nullptr;
  std::shared_ptr<DeviceBuffer> arena_;
  std::shared_ptr<DeviceBuffer> workspace_;            // scratch for the node running now (the largest plan's)
  std::shared_ptr<DeviceBuffer> staging_;              // float32 graph inputs / outputs of values stored in 16 bits
  std::vector<onestep_cuda_node_plan> plan_;           // by node: the library's algorithm (device nodes)
  int32_t operand_ = ONESTEP_CUDA_F16;                 // the graph's tensor-core operand type
  std::vector<std::shared_ptr<DeviceBuffer>> consts_;  // by value id (null when not a constant on the device)
  std::vector<std::shared_ptr<DeviceBuffer>> inputs_;  // by position in spec.inputs (null when no device node reads it)
  std::vector<void*> data_;                            // device address of every value
  std::vector<DType> deviceDtype_;                     // how every value is stored on the device (activations: F32 or 16-bit)
  std::vector<Shape> deviceShape_;                     // its shape there (conv kernels: [Co, kh, kw, Ci])
  std::vector<std::string> fallback_;                  // by node: why it runs on the CPU ("" on the device)
  std::vector<int> inputPosition_;                     // by value id: its position in spec.inputs, or -1
  std::vector<Segment> segments_;
  std::vector<bool> outputOnHost_;                     // by output: read from the host mirror
  std::unique_ptr<class CpuPlan> cpu_;                 // the fallback nodes' plan
  std::shared_ptr<void> host_;                         // the host mirror of the arena (with fallbacks)
  bool captureFailed_ = false;
};

// Drops the device copies of a host tensor's memory (after it was rewritten in place, e.g. a
// LoRA re-fusion); graphs built afterwards upload it again. No-op without CUDA.
void forgetDeviceCopies(const void* hostData);

// Makes the live device copies of a deferred LoRA fusion (native/cpu/lora.h) again, in place, from
// its new definition (graphs keep their pointers: no re-upload, no rebuild). No-op without CUDA.
struct LoraDefinition;
void refuseDeviceCopies(const void* hostData, const LoraDefinition& def);

}  // namespace onestep
