// A read-only memory mapping of a whole file. Tensors that view it hold a shared_ptr,
// so the mapping lives as long as any view of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace onestep {

class MappedFile {
 public:
  // Maps `path` read-only. Throws ERR_ONESTEP_FILE_NOT_FOUND / ERR_ONESTEP_IO with the path.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  void* mapping_ = nullptr;  // platform handle (Windows)
};

}  // namespace onestep
