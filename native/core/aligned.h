// Aligned host memory, the one place that knows how each platform provides it (std::aligned_alloc
// needs a size that is a multiple of the alignment and does not exist on Windows).
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace onestep {

// `bytes` rounded up to a multiple of `align` (a power of two); throws std::bad_alloc.
inline void* alignedAlloc(size_t align, size_t bytes) {
  const size_t rounded = (bytes + align - 1) / align * align;
#ifdef _WIN32
  void* p = _aligned_malloc(rounded ? rounded : align, align);
#else
  void* p = std::aligned_alloc(align, rounded ? rounded : align);
#endif
  if (!p) throw std::bad_alloc();
  return p;
}

inline void alignedFree(void* p) {
#ifdef _WIN32
  _aligned_free(p);
#else
  std::free(p);
#endif
}

struct AlignedFree {
  void operator()(void* p) const { alignedFree(p); }
};

// An owned aligned array of T (uninitialised).
template <typename T>
using AlignedArray = std::unique_ptr<T[], AlignedFree>;

template <typename T>
AlignedArray<T> alignedArray(size_t n, size_t align = 64) {
  return AlignedArray<T>(static_cast<T*>(alignedAlloc(align, n * sizeof(T))));
}

// A growable per-thread scratch buffer of floats, 64-byte aligned: get(n) returns room for at
// least n floats (its contents are not kept across growth). Use as `thread_local ScratchBuffer`.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  float* get(size_t n) {
    if (n > cap_) {
      data_.reset();
      cap_ = 0;
      data_ = alignedArray<float>(n);
      cap_ = n;
    }
    return data_.get();
  }

 private:
  AlignedArray<float> data_;
  size_t cap_ = 0;
};

}  // namespace onestep
