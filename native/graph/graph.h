// A graph of ops built once per (model, batch, height, width) and run many times. Construction
// validates everything (op codes, value ids, topological order, dtypes, shapes recomputed and
// compared with the declared ones) and plans one activation arena: each intermediate gets an
// offset, reused once its last reader has run. Running binds the inputs, executes the nodes in
// order on the calling thread (kernels fan out over the thread pool) and copies the outputs out;
// a CUDA graph runs the same plan on the GPU (native/backend/cuda_executor.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../core/tensor.h"
#include "op_table.h"

namespace onestep {

enum class ValueKind : int32_t { Input = 0, Const = 1, Node = 2 };

struct GraphValue {
  ValueKind kind = ValueKind::Node;
  DType dtype = DType::F32;
  Shape shape;
  std::string name;
  int constIndex = -1;  // Const: index into consts
};

struct GraphNode {
  Op op = Op::Count;
  std::vector<int32_t> inputs;  // value ids, -1 for an absent optional input
  std::vector<double> attrs;    // validated; read them as attrs<Conv2dAttrs>() etc.
  int32_t output = -1;
  template <typename T>
  T attrsAs() const {
    return T::from(attrs.data());
  }
};

struct GraphSpec {
  std::vector<GraphValue> values;
  std::vector<Tensor> consts;
  std::vector<GraphNode> nodes;
  std::vector<int32_t> inputs;   // run() argument order
  std::vector<int32_t> outputs;  // run() result order
  // CUDA: the dtype GEMM / convolution weights are uploaded as, which is also the tensor-core
  // operand type their kernels round activations to (F16, or BF16 for fp16-overflowing graphs)
  DType gemmOperand = DType::F16;
  // CPU: the operands of GEMMs on constant weights (linear, conv2d): F32, or BF16 (weights kept as
  // bf16 panels, activations rounded while packed, float32 accumulation; no Winograd)
  DType cpuGemmOperand = DType::F32;
};

// What a kernel sees of a value during a run.
struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::F32;
  const Shape* shape = nullptr;
  int64_t numel() const;
};

struct NodeProfile {
  std::string op;
  const char* backend = "";    // which backend ran it ("cpu", "cuda")
  const char* algorithm = "";  // the backend's choice for it ("" where the op has one way)
  double seconds = 0;
  double flops = 0;
  double cpuSeconds = -1;  // CPU time of the process while it ran (CPU nodes; -1 where not measured)
};

// Process CPU time in seconds (all threads), for profiles.
double processCpuSeconds();

// Where a node runs, and how: the planned backend's choice.
struct NodePlacement {
  const char* backend = "";
  const char* algorithm = "";
  bool fallback = false;  // the graph's device could not run it; the CPU does
  std::string reason;     // why it fell back (the device backend's words)
  const char* storage = "";  // how its output is stored where it runs (F32, F16, BF16); "" on the CPU backend
};

enum class Device : int32_t { Cpu = 0, Cuda = 1 };

class CudaExecutor;
class CpuPlan;

// The activation arena's plan: an offset (64-byte aligned) for every value that owns storage (the
// nodes' outputs; reshapes alias their input's root, aliasOf), blocks reused once their last reader
// has run (best fit), outputs kept to the end. bytesOf: each value's size in that arena (a backend
// that stores some values narrower plans its own). Returns the arena's size.
size_t planArena(const GraphSpec& spec, const std::vector<int32_t>& aliasOf, const std::vector<size_t>& bytesOf, std::vector<int64_t>& offset);

class Graph {
 public:
  explicit Graph(GraphSpec spec, Device device = Device::Cpu);
  ~Graph();

  // Runs the graph. inputs[i] binds spec.inputs[i]. Returns new owned tensors (float32).
  // Serialised per graph: concurrent calls wait for each other. `repeat` > 1 computes the nodes
  // that many times between binding the inputs and copying the outputs (benchmarks).
  std::vector<Tensor> run(const std::vector<Tensor>& inputs, std::vector<NodeProfile>* profile = nullptr, int repeat = 1);

  // The backends' plans: algorithms, derived weights (and, on CUDA, the upload). Done once, on
  // the thread that compiles the graph; run() does it if it was not.
  void prepare();
  // After prepare(): where and how each node runs.
  std::vector<NodePlacement> placements();

  // The activation arena's bytes (on CUDA, once prepared: the device arena, values as stored there).
  size_t arenaBytes() const;
  Device device() const { return device_; }
  size_t nodeCount() const { return spec_.nodes.size(); }
  const GraphSpec& spec() const { return spec_; }
  // Each node's cost (op_rules.cc), in node order.
  const std::vector<OpCost>& costs() const { return costs_; }

 private:
  void validate();
  void plan();

  GraphSpec spec_;
  std::vector<OpCost> costs_;
  std::vector<int32_t> aliasOf_;    // value -> the value whose storage it uses (reshape), else itself
  std::vector<int64_t> offset_;     // arena offset in bytes for node values that own storage
  size_t arenaBytes_ = 0;
  std::mutex runMutex_;
  std::shared_ptr<void> arena_;
  Device device_ = Device::Cpu;
  std::unique_ptr<CpuPlan> cpu_;        // a CPU graph's plan
  std::unique_ptr<CudaExecutor> cuda_;  // a CUDA graph's executor
  void prepareLocked();
};

}  // namespace onestep
