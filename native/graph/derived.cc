#include "derived.h"

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "../backend/cuda_executor.h"
#include "../core/error.h"
#include "../cpu/thread_pool.h"

namespace onestep {

namespace {

struct Entry {
  std::weak_ptr<const void> owner;  // the source's storage
  std::weak_ptr<const Tensor> form;
};

using Key = std::tuple<uintptr_t, size_t, int, std::string, std::string>;  // data, bytes, dtype, shape, form

struct Cache {
  std::mutex mutex;
  std::map<Key, Entry> entries;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: graphs may outlive static teardown
  return *c;
}

template <typename T>
void relayoutOhwi(const T* src, T* dst, int64_t co, int64_t ci, int64_t k) {
  // per output channel: [Ci, k] -> [k, Ci]
  ThreadPool::global().parallelFor(co, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t o = begin; o < end; ++o) {
      const T* s = src + o * ci * k;
      T* d = dst + o * ci * k;
      for (int64_t c = 0; c < ci; ++c)
        for (int64_t j = 0; j < k; ++j) d[j * ci + c] = s[c * k + j];
    }
  });
}

}  // namespace

std::shared_ptr<const Tensor> derivedConstant(const Tensor& src, const char* form, const DerivedMaker& make) {
  Cache& c = cache();
  const Key key{(uintptr_t)src.data(), src.nbytes(), (int)src.dtype(), shapeString(src.shape()), form};
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.entries.find(key);
    if (it != c.entries.end()) {
      if (!it->second.owner.expired())
        if (auto f = it->second.form.lock()) return f;
      c.entries.erase(it);
    }
  }
  auto made = std::make_shared<const Tensor>(make(src));  // outside the lock: forms can take a while
  std::lock_guard<std::mutex> lock(c.mutex);
  auto it = c.entries.find(key);
  if (it != c.entries.end() && !it->second.owner.expired())
    if (auto f = it->second.form.lock()) return f;  // another planner made it meanwhile
  c.entries[key] = Entry{src.owner(), made};
  return made;
}

void forgetDerivedOnHost(const void* data) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  eraseEntriesOf(c.entries, data);
}

void forgetDerived(const void* data) {
  forgetDerivedOnHost(data);
  forgetDeviceCopies(data);
}

void relayoutConvKernelInto(const void* data, DType dtype, const Shape& s, void* dst) {
  check(s.size() == 4, "ERR_ONESTEP_INTERNAL", "conv kernel must be [Co, Ci, kh, kw], got ", shapeString(s));
  const int64_t co = s[0], ci = s[1], k = s[2] * s[3];
  switch (dtypeSize(dtype)) {
    case 2: relayoutOhwi(static_cast<const uint16_t*>(data), static_cast<uint16_t*>(dst), co, ci, k); break;
    case 4: relayoutOhwi(static_cast<const uint32_t*>(data), static_cast<uint32_t*>(dst), co, ci, k); break;
    default: fail("ERR_ONESTEP_GRAPH", "conv kernels must be F32, F16 or BF16, got ", dtypeName(dtype));
  }
}

Tensor relayoutConvKernel(const void* data, DType dtype, const Shape& s) {
  check(s.size() == 4, "ERR_ONESTEP_INTERNAL", "conv kernel must be [Co, Ci, kh, kw], got ", shapeString(s));
  Tensor out = Tensor::uninitialized(dtype, Shape{s[0], s[2], s[3], s[1]});
  relayoutConvKernelInto(data, dtype, s, out.mutableData());
  return out;
}

std::shared_ptr<const Tensor> convKernelOhwi(const Tensor& w) {
  return derivedConstant(w, "conv_ohwi", [](const Tensor& t) {
    Tensor out = relayoutConvKernel(t.data(), t.dtype(), t.shape());
    t.releaseMappedPages();  // the checkpoint's layout is not read again by this form
    return out;
  });
}

}  // namespace onestep
