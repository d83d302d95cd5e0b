// A host tensor: dtype, shape and a view into storage that is either owned memory or a
// read-only file mapping. Copies share storage; the storage lives while any view does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dtype.h"
#include "mapped_file.h"

namespace onestep {

using Shape = std::vector<int64_t>;

// Number of elements; throws ERR_ONESTEP_SHAPE for negative dims or overflow past 2^53.
int64_t shapeNumel(const Shape& shape);
std::string shapeString(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // Zero-filled owned tensor.
  static Tensor empty(DType dtype, const Shape& shape);
  // Owned tensor whose contents are unspecified: only for a caller that writes every element
  // before anything reads it (saves a pass over large outputs).
  static Tensor uninitialized(DType dtype, const Shape& shape);
  // View of `nbytes` bytes at `offset` in a mapping; validates range and nbytes == numel * size.
  static Tensor view(std::shared_ptr<MappedFile> file, uint64_t offset, uint64_t nbytes, DType dtype,
                     const Shape& shape, const std::string& name);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return (size_t)numel_ * dtypeSize(dtype_); }
  bool writable() const { return writable_; }
  bool ownsMemory() const { return writable_; }
  const uint8_t* data() const { return data_; }
  uint8_t* mutableData();
  // What keeps the data alive (an owned block or a file mapping): expires when the data is freed.
  std::weak_ptr<const void> owner() const { return keepalive_; }

  // For a view of a mapped file: tells the OS the pages may be dropped (they are re-read from the
  // file if touched again). Used after a weight was converted into its own copy. No-op otherwise.
  void releaseMappedPages() const;

  // Converts every element to float32 (I64 is converted with rounding to nearest float).
  void copyToFloat32(float* out) const { copyToFloat32(0, numel_, out); }
  // Elements [begin, begin + count) only (for splitting a conversion over threads).
  void copyToFloat32(int64_t begin, int64_t count, float* out) const;
  // Converts float32 values into this tensor's dtype (F32/F16/BF16; I64 truncates toward zero).
  void copyFromFloat32(const float* in) { copyFromFloat32(0, numel_, in); }
  void copyFromFloat32(int64_t begin, int64_t count, const float* in);

 private:
  static Tensor allocate(DType dtype, const Shape& shape, bool zero);

  DType dtype_ = DType::F32;
  Shape shape_;
  int64_t numel_ = 0;
  std::shared_ptr<const void> keepalive_;
  const uint8_t* data_ = nullptr;
  bool writable_ = false;
  bool mapped_ = false;
};

}  // namespace onestep
