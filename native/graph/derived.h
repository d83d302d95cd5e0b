// Derived forms of constant tensors: what a backend makes of a weight for its own kernels (a
// convolution kernel relaid out as [Co, kh, kw, Ci], its Winograd transform, ...). Each form is
// made once per source tensor and shared by every graph that uses it while any of them lives
// (graphs of several shapes share their weights' forms). An entry is valid while the source's
// storage is alive; a source rewritten in place (a LoRA re-fusion) is forgotten by forgetDerived.
// Made on the thread that plans the graph (never the JS thread).
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <tuple>
#include <memory>

#include "../core/tensor.h"

namespace onestep {

using DerivedMaker = std::function<Tensor(const Tensor& src)>;

// The `form` of `src` (a name unique to the transformation), made by `make` if no live graph
// holds one. Thread-safe; two planners asking at once may both make it, one result is kept.
std::shared_ptr<const Tensor> derivedConstant(const Tensor& src, const char* form, const DerivedMaker& make);

// Drops the cached forms of the tensor whose data starts at `data` (it was rewritten in place);
// graphs already holding a form keep it, later plans make it again. Also drops GPU copies.
void forgetDerived(const void* data);
// The same for the CPU's forms only (the device copies are kept, e.g. re-fused in place).
void forgetDerivedOnHost(const void* data);

// Drops the entries of a cache keyed by tuples that start with a source's address (the derived
// forms here, the CUDA executor's device copies) for the source at `data`. The caller holds its lock.
template <typename Entries>
void eraseEntriesOf(Entries& entries, const void* data) {
  for (auto it = entries.begin(); it != entries.end();) it = std::get<0>(it->first) == (uintptr_t)data ? entries.erase(it) : std::next(it);
}

// A convolution kernel as the checkpoint stores it, [Co, Ci, kh, kw], relaid out as [Co, kh, kw, Ci]
// in its own dtype (the layout the CPU's implicit GEMM and the CUDA kernels read), cached as above.
// The source's mapped pages are released afterwards (they are re-read from the file if needed).
std::shared_ptr<const Tensor> convKernelOhwi(const Tensor& w);
// The same relayout of any memory, uncached.
Tensor relayoutConvKernel(const void* data, DType dtype, const Shape& shape);
// The same relayout into `dst` (the kernel's size, any alignment).
void relayoutConvKernelInto(const void* data, DType dtype, const Shape& shape, void* dst);

}  // namespace onestep
