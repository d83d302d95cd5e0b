// The op table, mirrored from native/graph/op_table.h row by row (test/graph/op_table.test.js
// checks it against the addon). Order = op code.

export interface OpDef {
  name: string;
  minInputs: number;
  maxInputs: number;
  attrCount: number;
}

export const OPS: readonly OpDef[] = [
  { name: 'linear', minInputs: 2, maxInputs: 4, attrCount: 1 },
  { name: 'conv2d', minInputs: 2, maxInputs: 4, attrCount: 8 },
  { name: 'group_norm', minInputs: 3, maxInputs: 3, attrCount: 3 },
  { name: 'layer_norm', minInputs: 3, maxInputs: 3, attrCount: 1 },
  { name: 'attention', minInputs: 3, maxInputs: 3, attrCount: 3 },
  { name: 'add', minInputs: 2, maxInputs: 2, attrCount: 0 },
  { name: 'mul', minInputs: 2, maxInputs: 2, attrCount: 0 },
  { name: 'unary', minInputs: 1, maxInputs: 1, attrCount: 7 },
  { name: 'geglu', minInputs: 1, maxInputs: 1, attrCount: 0 },
  { name: 'concat', minInputs: 2, maxInputs: 2, attrCount: 0 },
  { name: 'upsample', minInputs: 1, maxInputs: 1, attrCount: 2 },
  { name: 'timestep_embedding', minInputs: 1, maxInputs: 1, attrCount: 5 },
  { name: 'embedding', minInputs: 2, maxInputs: 2, attrCount: 0 },
  { name: 'select_rows', minInputs: 2, maxInputs: 2, attrCount: 0 },
  { name: 'permute', minInputs: 1, maxInputs: 1, attrCount: 7 },
  { name: 'reshape', minInputs: 1, maxInputs: 1, attrCount: 7 },
  { name: 'slice', minInputs: 1, maxInputs: 1, attrCount: 3 },
  { name: 'avg_pool', minInputs: 1, maxInputs: 1, attrCount: 1 },
  { name: 'conv2d_winograd', minInputs: 2, maxInputs: 4, attrCount: 6 },
  { name: 'scheduler_step', minInputs: 3, maxInputs: 4, attrCount: 1 },
];

export type OpName =
  | 'linear'
  | 'conv2d'
  | 'group_norm'
  | 'layer_norm'
  | 'attention'
  | 'add'
  | 'mul'
  | 'unary'
  | 'geglu'
  | 'concat'
  | 'upsample'
  | 'timestep_embedding'
  | 'embedding'
  | 'select_rows'
  | 'permute'
  | 'reshape'
  | 'slice'
  | 'avg_pool'
  | 'conv2d_winograd'
  | 'scheduler_step';

export function opCode(name: OpName): number {
  const i = OPS.findIndex((o) => o.name === name);
  if (i < 0) throw new Error(`unknown op ${name}`);
  return i;
}

/** Activations, as native/cpu/activation.h numbers them. */
export enum Act {
  None = 0,
  Silu = 1,
  Gelu = 2,
  GeluTanh = 3,
  QuickGelu = 4,
  Relu = 5,
  Tanh = 6,
  Sigmoid = 7,
  Exp = 8,
}

/** The activation named by a config's hidden_act / act_fn. */
export function actFromName(name: string): Act | undefined {
  switch (name) {
    case 'silu':
    case 'swish':
      return Act.Silu;
    case 'gelu':
      return Act.Gelu;
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return Act.GeluTanh;
    case 'quick_gelu':
      return Act.QuickGelu;
    case 'relu':
      return Act.Relu;
    default:
      return undefined;
  }
}
