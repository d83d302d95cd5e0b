#include "tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "error.h"
#include "aligned.h"
#include "half.h"

#ifndef _WIN32
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace onestep {

namespace {
constexpr int64_t kMaxSafeInteger = (int64_t(1) << 53) - 1;

struct AlignedBlock {
  void* ptr = nullptr;
  size_t mapped = 0;  // bytes mapped directly (large blocks), else 0
  explicit AlignedBlock(size_t bytes, bool zero = true) {
    const size_t rounded = ((bytes + 63) / 64) * 64;
#ifndef _WIN32
    // Large blocks (weights' derived forms, fused weights) are mapped from the OS and unmapped when
    // freed. Through malloc, glibc's dynamic mmap threshold serves them from its heaps after the
    // first large free, and a released model's 1.4 GB of packed weights stayed resident.
    // No transparent-huge-page advice: where the THP defrag mode is "madvise" (common), first
    // touch of an advised block compacts memory synchronously, which migrates other pages of the
    // process (the JS thread's heap among them): it stalled the event loop for 20-120 ms while a
    // real-size UNet's weight forms were made, and the cold UNet run was 0.8-1.5 s slower.
    if (rounded >= kMapped) {
      void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      ptr = p;
      mapped = rounded;
      return;  // anonymous pages read as zeros
    }
#endif
    ptr = alignedAlloc(64, rounded);
    if (zero) std::memset(ptr, 0, rounded ? rounded : 64);
  }
  ~AlignedBlock() {
#ifndef _WIN32
    if (mapped) {
      munmap(ptr, mapped);
      return;
    }
#endif
    alignedFree(ptr);
  }
  AlignedBlock(const AlignedBlock&) = delete;
  AlignedBlock& operator=(const AlignedBlock&) = delete;
  static constexpr size_t kMapped = size_t(1) << 20;
};
}  // namespace

int64_t shapeNumel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    check(d >= 0, "ERR_ONESTEP_SHAPE", "negative dimension in shape ", shapeString(shape));
    if (d == 0) return 0;
    check(n <= kMaxSafeInteger / d, "ERR_ONESTEP_SHAPE", "shape ", shapeString(shape), " is too large");
    n *= d;
  }
  return n;
}

std::string shapeString(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

Tensor Tensor::empty(DType dtype, const Shape& shape) { return allocate(dtype, shape, true); }

Tensor Tensor::uninitialized(DType dtype, const Shape& shape) { return allocate(dtype, shape, false); }

Tensor Tensor::allocate(DType dtype, const Shape& shape, bool zero) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.numel_ = shapeNumel(shape);
  auto block = std::make_shared<AlignedBlock>(t.nbytes(), zero);
  t.data_ = static_cast<const uint8_t*>(block->ptr);
  t.keepalive_ = block;
  t.writable_ = true;
  return t;
}

Tensor Tensor::view(std::shared_ptr<MappedFile> file, uint64_t offset, uint64_t nbytes, DType dtype,
                    const Shape& shape, const std::string& name) {
  check(file != nullptr, "ERR_ONESTEP_INTERNAL", "no file for tensor '", name, "'");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.numel_ = shapeNumel(shape);
  const uint64_t expected = (uint64_t)t.numel_ * dtypeSize(dtype);
  check(nbytes == expected, "ERR_ONESTEP_SAFETENSORS_SIZE", "tensor '", name, "' in ", file->path(), ": ",
        nbytes, " bytes for shape ", shapeString(shape), " of ", dtypeName(dtype), " (expected ", expected,
        ")");
  check(offset <= file->size() && nbytes <= file->size() - offset, "ERR_ONESTEP_SAFETENSORS_RANGE",
        "tensor '", name, "' in ", file->path(), ": bytes [", offset, ", ", offset + nbytes,
        ") lie beyond the end of the file (", file->size(), " bytes)");
  t.data_ = file->data() ? file->data() + offset : nullptr;
  t.keepalive_ = file;
  t.writable_ = false;
  t.mapped_ = true;
  return t;
}

void Tensor::releaseMappedPages() const {
#ifndef _WIN32
  if (!mapped_ || !data_) return;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t begin = ((uintptr_t)data_ + page - 1) / page * page;
  const uintptr_t end = ((uintptr_t)data_ + nbytes()) / page * page;
  if (end > begin) madvise((void*)begin, end - begin, MADV_DONTNEED);
#endif
}

uint8_t* Tensor::mutableData() {
  check(writable_, "ERR_ONESTEP_READONLY", "tensor is a read-only view of a mapped file");
  return const_cast<uint8_t*>(data_);
}

void Tensor::copyToFloat32(int64_t begin, int64_t count, float* out) const {
  check(begin >= 0 && count >= 0 && begin + count <= numel_, "ERR_ONESTEP_INTERNAL", "copyToFloat32: range out of bounds");
  const int64_t n = count;
  const uint8_t* src = data_ + begin * (int64_t)dtypeSize(dtype_);
  switch (dtype_) {
    case DType::F32:
      if (n) std::memcpy(out, src, (size_t)n * 4);
      return;
    case DType::F16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = halfToFloat(h);
      }
      return;
    }
    case DType::BF16: {
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16ToFloat(h);
      }
      return;
    }
    case DType::I64: {
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        out[i] = (float)v;
      }
      return;
    }
  }
}

void Tensor::copyFromFloat32(int64_t begin, int64_t count, const float* in) {
  check(begin >= 0 && count >= 0 && begin + count <= numel_, "ERR_ONESTEP_INTERNAL", "copyFromFloat32: range out of bounds");
  uint8_t* dst = mutableData() + begin * (int64_t)dtypeSize(dtype_);
  const int64_t n = count;
  switch (dtype_) {
    case DType::F32:
      if (n) std::memcpy(dst, in, (size_t)n * 4);
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = floatToHalf(in[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = floatToBf16(in[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::I64:
      for (int64_t i = 0; i < n; ++i) {
        check(std::isfinite(in[i]), "ERR_ONESTEP_VALUE", "non-finite value cannot be stored as I64");
        const int64_t v = (int64_t)in[i];
        std::memcpy(dst + 8 * i, &v, 8);
      }
      return;
  }
}

}  // namespace onestep
