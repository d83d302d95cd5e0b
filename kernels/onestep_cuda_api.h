/* The C ABI between the addon and the CUDA backend library (libonestep_cuda).
 * The addon dlopen()s the library and asks it for this table; nothing else crosses.
 * Bump ONESTEP_CUDA_ABI whenever the table or a struct changes. */
#ifndef ONESTEP_CUDA_API_H
#define ONESTEP_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONESTEP_CUDA_ABI 1

typedef struct {
  char name[256];
  uint64_t total_memory;
  uint64_t free_memory;
  int cc_major;
  int cc_minor;
  int multiprocessors;
} onestep_cuda_device_info;

typedef struct {
  int abi_version;
  /* Which CUDA runtime and GPU architectures the library was compiled for. */
  const char* (*build_info)(void);
  /* Counts devices and runs a tiny kernel on device 0. Returns 0 when usable; otherwise
   * writes the reason into err (NUL-terminated, at most errlen bytes). */
  int (*probe)(int* device_count, char* err, size_t errlen);
  int (*device_info)(int index, onestep_cuda_device_info* out, char* err, size_t errlen);
} onestep_cuda_api;

#if defined(_WIN32)
#define ONESTEP_CUDA_EXPORT __declspec(dllexport)
#else
#define ONESTEP_CUDA_EXPORT __attribute__((visibility("default")))
#endif

/* Returns the table, or NULL when the library does not speak `abi_version`. */
ONESTEP_CUDA_EXPORT const onestep_cuda_api* onestep_cuda_get_api(int abi_version);

#ifdef __cplusplus
}
#endif

#endif
