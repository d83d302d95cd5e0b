/* The C ABI between the addon and the CUDA backend library (libonestep_cuda).
 * The addon dlopen()s the library and asks it for this table; nothing else crosses.
 * Bump ONESTEP_CUDA_ABI whenever the table or a struct changes.
 *
 * Every function that can fail returns 0 on success, else non-zero with a NUL-terminated
 * message in err (at most errlen bytes); nothing exits or aborts. Streams, device buffers and
 * captured graphs are opaque pointers owned by the caller until it frees them. */
#ifndef ONESTEP_CUDA_API_H
#define ONESTEP_CUDA_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONESTEP_CUDA_ABI 6

/* Element types: the addon's DType values. */
#define ONESTEP_CUDA_F32 0
#define ONESTEP_CUDA_F16 1
#define ONESTEP_CUDA_BF16 2
#define ONESTEP_CUDA_I64 3

#define ONESTEP_CUDA_MAX_RANK 8
#define ONESTEP_CUDA_MAX_INPUTS 4
#define ONESTEP_CUDA_MAX_ATTRS 8
#define ONESTEP_CUDA_MAX_LORA_PARTS 48 /* adapters lora_fuse takes on one weight */

typedef struct {
  char name[256];
  uint64_t total_memory;
  uint64_t free_memory;
  int cc_major;
  int cc_minor;
  int multiprocessors;
} onestep_cuda_device_info;

/* A tensor in device memory (data == NULL: an absent optional input). Dense, row-major. */
typedef struct {
  void* data;
  int32_t dtype;
  int32_t rank;
  int64_t shape[ONESTEP_CUDA_MAX_RANK];
} onestep_cuda_tensor;

/* One graph node, already validated by the addon's op rules (native/graph/op_rules.cc);
 * op is a code of native/graph/op_defs.h; its attributes are read through that header's typed structs.
 * operand: the graph's tensor-core operand type (ONESTEP_CUDA_F16, or ONESTEP_CUDA_BF16 where the
 * graph needs fp32's range), for ops without a weight to tell (attention).
 * algorithm / workspace: what plan_node chose for it (0 / none before it is planned). */
typedef struct {
  int32_t op;
  int32_t n_inputs;
  onestep_cuda_tensor inputs[ONESTEP_CUDA_MAX_INPUTS];
  onestep_cuda_tensor output;
  int32_t n_attrs;
  double attrs[ONESTEP_CUDA_MAX_ATTRS];
  int32_t operand;
  int32_t algorithm;
  uint64_t workspace_bytes;
  void* workspace;  /* device scratch of at least workspace_bytes, only for this node's run */
} onestep_cuda_node;

/* The library's plan for a node it supports: which algorithm (passed back in the node's
 * `algorithm` to run_node), its name (placements(), profiles) and the device scratch it needs. */
typedef struct {
  int32_t algorithm;
  uint64_t workspace_bytes;
  char name[48];
} onestep_cuda_node_plan;

typedef struct {
  int abi_version;
  /* Which CUDA runtime and GPU architectures the library was compiled for. */
  const char* (*build_info)(void);
  /* Counts devices and runs a tiny kernel on device 0. Returns 0 when usable. */
  int (*probe)(int* device_count, char* err, size_t errlen);
  int (*device_info)(int index, onestep_cuda_device_info* out, char* err, size_t errlen);

  /* Device memory. alloc fails with a message starting "out of memory" when the GPU is full. */
  int (*alloc)(size_t bytes, void** out, char* err, size_t errlen);
  void (*release)(void* ptr);
  int (*mem_info)(uint64_t* free_bytes, uint64_t* total_bytes, char* err, size_t errlen);

  /* Streams; copies are asynchronous on `stream` (host memory must stay valid until a sync). */
  int (*stream_create)(void** out, char* err, size_t errlen);
  void (*stream_destroy)(void* stream);
  int (*stream_sync)(void* stream, char* err, size_t errlen);
  int (*copy_to_device)(void* dst, const void* src, size_t bytes, void* stream, char* err, size_t errlen);
  int (*copy_to_host)(void* dst, const void* src, size_t bytes, void* stream, char* err, size_t errlen);
  /* n elements of src_dtype at src -> dst_dtype at dst (both on the device; F32 / F16 / BF16). */
  int (*convert)(void* dst, int32_t dst_dtype, const void* src, int32_t src_dtype, int64_t n, void* stream, char* err,
                 size_t errlen);

  /* Launches one node's kernels on `stream` (nothing waits). */
  int (*run_node)(const onestep_cuda_node* node, void* stream, char* err, size_t errlen);
  /* Whether run_node can run this node (asked once per node when a graph is planned; data
   * pointers may be NULL): 1 yes, 0 no with the reason in why (the node then runs elsewhere). */
  int (*supports_node)(const onestep_cuda_node* node, char* why, size_t whylen);
  /* The algorithm for a node supports_node accepted (asked once per node when a graph is planned;
   * data pointers may be NULL): may load a vendor library and run its heuristics. */
  int (*plan_node)(const onestep_cuda_node* node, onestep_cuda_node_plan* out, char* err, size_t errlen);
  /* The vendor math libraries (loading them on first call): a JSON array of
   * {name, loaded, version, path, ops} or {name, loaded: false, reason}. */
  const char* (*math_libraries)(void);

  /* CUDA graphs: everything launched on `stream` between begin and end is captured, then
   * replayed by launch. */
  int (*capture_begin)(void* stream, char* err, size_t errlen);
  int (*capture_end)(void* stream, void** graph_exec, char* err, size_t errlen);
  int (*graph_launch)(void* graph_exec, void* stream, char* err, size_t errlen);
  void (*graph_destroy)(void* graph_exec);

  /* LoRA fusion (docs/LORA.md), launched on `stream`: out = base + sum_p factors[p] * ups[p] @ downs[p],
   * accumulated in float32 and rounded once to out's type (F32 / F16 / BF16 anywhere; base may be
   * out). out and base: the weight, [N, ...] with K = numel / N; ups[p]: N x r_p elements, downs[p]:
   * r_p x K. conv_cin > 0: out and base are a conv kernel relaid out as [Co, kh, kw, Ci] with
   * Ci = conv_cin while downs keep the checkpoint's [r, Ci, kh, kw] order. */
  int (*lora_fuse)(const onestep_cuda_tensor* out, const onestep_cuda_tensor* base, int32_t n_parts, const onestep_cuda_tensor* ups,
                   const onestep_cuda_tensor* downs, const float* factors, int64_t conv_cin, void* stream, char* err, size_t errlen);
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
