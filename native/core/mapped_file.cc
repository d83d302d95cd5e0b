#include "mapped_file.h"

#include <cerrno>
#include <cstring>

#include "error.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace onestep {

#ifdef _WIN32

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  const int wlen = MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, nullptr, 0);
  std::wstring wpath(wlen > 0 ? wlen : 0, L'\0');
  if (wlen > 0) MultiByteToWideChar(CP_UTF8, 0, path.c_str(), -1, &wpath[0], wlen);
  HANDLE h = CreateFileW(wpath.c_str(), GENERIC_READ, FILE_SHARE_READ, nullptr, OPEN_EXISTING,
                         FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) {
    const DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
      fail("ERR_ONESTEP_FILE_NOT_FOUND", "file not found: ", path);
    fail("ERR_ONESTEP_IO", "cannot open ", path, " (error ", (unsigned long)e, ")");
  }
  LARGE_INTEGER sz;
  if (!GetFileSizeEx(h, &sz)) {
    CloseHandle(h);
    fail("ERR_ONESTEP_IO", "cannot stat ", path);
  }
  f->size_ = (uint64_t)sz.QuadPart;
  if (f->size_ > 0) {
    HANDLE m = CreateFileMappingW(h, nullptr, PAGE_READONLY, 0, 0, nullptr);
    CloseHandle(h);
    if (!m) fail("ERR_ONESTEP_IO", "cannot map ", path);
    void* p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
    if (!p) {
      CloseHandle(m);
      fail("ERR_ONESTEP_IO", "cannot map ", path);
    }
    f->mapping_ = m;
    f->data_ = static_cast<const uint8_t*>(p);
  } else {
    CloseHandle(h);
  }
  return f;
}

MappedFile::~MappedFile() {
  if (data_) UnmapViewOfFile(data_);
  if (mapping_) CloseHandle((HANDLE)mapping_);
}

#else

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  std::shared_ptr<MappedFile> f(new MappedFile());
  f->path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) fail("ERR_ONESTEP_FILE_NOT_FOUND", "file not found: ", path);
    fail("ERR_ONESTEP_IO", "cannot open ", path, ": ", std::strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("ERR_ONESTEP_IO", "not a regular file: ", path);
  }
  f->size_ = (uint64_t)st.st_size;
  if (f->size_ > 0) {
    void* p = mmap(nullptr, (size_t)f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) fail("ERR_ONESTEP_IO", "cannot map ", path, ": ", std::strerror(e));
    f->data_ = static_cast<const uint8_t*>(p);
  } else {
    ::close(fd);
  }
  return f;
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), (size_t)size_);
}

#endif

}  // namespace onestep
