/* THE op list, as a plain preprocessor table (C and CUDA include it too: the CUDA backend library
 * dispatches on the same op codes). Each row: identifier, name, min inputs, max inputs, attribute
 * count. op_table.h documents the inputs and attributes; lib/graph/ops.ts mirrors the rows. */
#ifndef ONESTEP_OP_LIST_H
#define ONESTEP_OP_LIST_H

#define ONESTEP_OP_TABLE(X)                            \
  X(Linear, "linear", 2, 4, 1)                         \
  X(Conv2d, "conv2d", 2, 4, 8)                         \
  X(GroupNorm, "group_norm", 3, 3, 3)                  \
  X(LayerNorm, "layer_norm", 3, 3, 1)                  \
  X(Attention, "attention", 3, 3, 3)                   \
  X(Add, "add", 2, 2, 0)                               \
  X(Mul, "mul", 2, 2, 0)                               \
  X(Unary, "unary", 1, 1, 7)                           \
  X(Geglu, "geglu", 1, 1, 0)                           \
  X(Concat, "concat", 2, 2, 0)                         \
  X(Upsample, "upsample", 1, 1, 2)                     \
  X(TimestepEmbedding, "timestep_embedding", 1, 1, 5)  \
  X(Embedding, "embedding", 2, 2, 0)                   \
  X(SelectRows, "select_rows", 2, 2, 0)                \
  X(Permute, "permute", 1, 1, 7)                       \
  X(Reshape, "reshape", 1, 1, 7)                       \
  X(Slice, "slice", 1, 1, 3)                           \
  X(AvgPool, "avg_pool", 1, 1, 1)                     \
  X(Conv2dWinograd, "conv2d_winograd", 2, 4, 6)       \
  X(SchedulerStep, "scheduler_step", 3, 4, 1)

/* Op codes as plain integers, in table order (Op in op_table.h has the same values). */
#define ONESTEP_OP_CODE_ENUM(id, name, minIn, maxIn, nAttrs) ONESTEP_OP_##id,
enum onestep_op_code { ONESTEP_OP_TABLE(ONESTEP_OP_CODE_ENUM) ONESTEP_OP_COUNT };
#undef ONESTEP_OP_CODE_ENUM

#endif
