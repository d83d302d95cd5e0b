// The op set as TypeScript sees it: names, inputs and attribute schemas come from
// lib/graph/op_schema.ts, generated from native/graph/op_defs.h (the one definition of every op).
// Attributes are given by name and encoded here in the schema's order.
import { Act, OP_NAMES, OP_SCHEMA, type OpAttrs, type OpName } from './op_schema';

export { ACT_NAMES, Act, OP_NAMES, OP_SCHEMA, type AttrSchema, type OpAttrs, type OpName, type OpSchema } from './op_schema';

const CODES = new Map<string, number>(OP_NAMES.map((n, i) => [n, i]));

export function opCode(name: OpName): number {
  const i = CODES.get(name);
  if (i === undefined) throw new Error(`unknown op ${name}`);
  return i;
}

/**
 * An op's attributes by name -> the positional array the graph takes (schema order, defaults
 * filled in). Throws on an unknown name or a missing required attribute; kinds and ranges are
 * checked natively when the node is made.
 */
export function encodeAttrs<K extends OpName>(op: K, attrs: OpAttrs[K]): number[] {
  const schema = OP_SCHEMA[opCode(op)];
  const given = attrs as Record<string, number | boolean | undefined>;
  for (const k of Object.keys(given)) {
    if (!schema.attrs.some((a) => a.name === k)) throw new Error(`${op}: unknown attribute '${k}' (${schema.attrs.map((a) => a.name).join(', ') || 'none'})`);
  }
  return schema.attrs.map((a) => {
    const v = given[a.name];
    if (v === undefined) {
      if (a.default === null) throw new Error(`${op}: attribute '${a.name}' is required`);
      return a.default;
    }
    return typeof v === 'boolean' ? (v ? 1 : 0) : v;
  });
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
