// Builds a graph of ops in TypeScript (shapes inferred here, re-checked natively) and compiles it
// into a native Graph that runs off the JS thread. Model code uses one GraphBuilder per
// (model, batch, height, width) and keeps the compiled graph.
import { ArgumentError, OnestepError, fromNative } from '../errors';
import { type NativeDType, type NativeGraph, type NativeTensor, addon, callNative } from '../native';
import { Act, OPS, type OpName, opCode } from './ops';
import { winogradFor } from './winograd';

/** Where a graph runs. */
export type Device = 'cpu' | 'cuda';
/**
 * The tensor-core operand type of a CUDA graph's GEMMs and convolutions (ignored on the CPU):
 * 'F16' by default; 'BF16' where activations may exceed fp16's range (diffusers' force_upcast
 * VAEs such as SDXL's). Accumulation is float32 either way; activations are stored as float32.
 */
export type GemmOperand = 'F16' | 'BF16';

const OPS_BY_CODE = OPS.map((o) => o.name);

export type ValueDType = 'F32' | 'F16' | 'BF16' | 'I64';

export class Value {
  constructor(
    readonly id: number,
    readonly shape: readonly number[],
    readonly dtype: ValueDType,
    readonly name: string,
  ) {}

  get rank(): number {
    return this.shape.length;
  }
}

interface ValueRecord {
  kind: 0 | 1 | 2; // input, const, node
  dtype: ValueDType;
  shape: number[];
  name: string;
  const?: number;
}

interface NodeRecord {
  op: number;
  inputs: number[];
  attrs: number[];
  output: number;
}

/** Thrown when a model builds an inconsistent graph (a bug or a bad checkpoint), naming the op. */
export class GraphError extends OnestepError {
  constructor(message: string) {
    super('ERR_ONESTEP_GRAPH', message);
  }
}

const eqShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const str = (s: readonly number[]) => `[${s.join(', ')}]`;
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

export interface UnaryOptions {
  act?: Act;
  /** y = clamp(c * act(a * x + b) + d, lo, hi) */
  a?: number;
  b?: number;
  c?: number;
  d?: number;
  lo?: number;
  hi?: number;
}

export interface Conv2dOptions {
  stride?: number | [number, number];
  /** same on all sides, [vertical, horizontal], or [top, left, bottom, right] */
  padding?: number | [number, number] | [number, number, number, number];
  /** nearest-upsample the input by this factor first (fused) */
  upsample?: number;
  act?: Act;
  residual?: Value;
}

export class GraphBuilder {
  private readonly values: ValueRecord[] = [];
  private readonly consts: NativeTensor[] = [];
  private readonly constIds = new Map<NativeTensor, number>();
  private readonly nodes: NodeRecord[] = [];
  private readonly inputIds: number[] = [];
  private readonly outputList: { name: string; id: number }[] = [];
  private autoName = 0;

  /**
   * dryRun: build() compiles nothing (the graph only describes; used with recording weights).
   * device: where the graph runs (CUDA graphs use conv2d, never the CPU's Winograd op).
   * gemmOperand: see GemmOperand.
   */
  constructor(private readonly options: { dryRun?: boolean; device?: Device; gemmOperand?: GemmOperand } = {}) {}

  get device(): Device {
    return this.options.device ?? 'cpu';
  }

  private addValue(rec: ValueRecord): Value {
    this.values.push(rec);
    return new Value(this.values.length - 1, rec.shape, rec.dtype, rec.name);
  }

  input(name: string, shape: number[], dtype: ValueDType = 'F32'): Value {
    if (this.inputIds.some((id) => this.values[id].name === name)) throw new ArgumentError(`graph input '${name}' declared twice`);
    const v = this.addValue({ kind: 0, dtype, shape: [...shape], name });
    this.inputIds.push(v.id);
    return v;
  }

  /** A constant (weight). The same native tensor used twice is one value. */
  constant(t: NativeTensor, name = ''): Value {
    const known = this.constIds.get(t);
    if (known !== undefined) return new Value(known, this.values[known].shape, this.values[known].dtype, this.values[known].name);
    this.consts.push(t);
    const v = this.addValue({ kind: 1, dtype: t.dtype, shape: [...t.shape], name, const: this.consts.length - 1 });
    this.constIds.set(t, v.id);
    return v;
  }

  private node(op: OpName, inputs: (Value | undefined)[], attrs: number[], shape: number[], name?: string): Value {
    const v = this.addValue({ kind: 2, dtype: 'F32', shape, name: name ?? `${op}_${this.autoName++}` });
    this.nodes.push({ op: opCode(op), inputs: inputs.map((x) => (x ? x.id : -1)), attrs, output: v.id });
    return v;
  }

  private fail(op: string, msg: string): never {
    throw new GraphError(`${op}: ${msg}`);
  }

  private asConst(x: Value | NativeTensor): Value {
    return x instanceof Value ? x : this.constant(x);
  }

  // ---- ops ------------------------------------------------------------------------------
  /** x[..., K] @ w[N, K]^T (+ bias) -> act -> (+ residual) */
  linear(x: Value, w: Value | NativeTensor, bias?: Value | NativeTensor, opts: { act?: Act; residual?: Value; name?: string } = {}): Value {
    const wv = this.asConst(w);
    const bv = bias ? this.asConst(bias) : undefined;
    if (wv.rank !== 2 || x.shape[x.rank - 1] !== wv.shape[1]) this.fail('linear', `x ${str(x.shape)} does not match w ${str(wv.shape)}`);
    const out = [...x.shape.slice(0, -1), wv.shape[0]];
    if (bv && !eqShape(bv.shape, [wv.shape[0]])) this.fail('linear', `bias ${str(bv.shape)} must be [${wv.shape[0]}]`);
    if (opts.residual && !eqShape(opts.residual.shape, out)) this.fail('linear', `residual ${str(opts.residual.shape)} must be ${str(out)}`);
    const inputs = [x, wv, bv, opts.residual];
    while (inputs.length > 2 && inputs[inputs.length - 1] === undefined) inputs.pop();
    return this.node('linear', inputs, [opts.act ?? Act.None], out, opts.name);
  }

  /**
   * NHWC convolution; w is prepared ([Co, kh, kw, Ci], see prepareConvWeight). A 3x3 stride-1
   * convolution large enough to pay off runs by Winograd F(2x2, 3x3) (see winogradPolicy).
   */
  conv2d(x: Value, w: Value | NativeTensor, bias?: Value | NativeTensor, opts: Conv2dOptions & { name?: string } = {}): Value {
    if (!(w instanceof Value) && !this.options.dryRun && this.device === 'cpu') {
      const u = winogradFor(w, x, opts);
      if (u) return this.conv2dWinograd(x, u, bias, opts);
    }
    const wv = this.asConst(w);
    const bv = bias ? this.asConst(bias) : undefined;
    if (x.rank !== 4 || wv.rank !== 4 || wv.shape[3] !== x.shape[3]) this.fail('conv2d', `x ${str(x.shape)} does not match w ${str(wv.shape)} ([Co, kh, kw, Ci])`);
    const [sh, sw] = typeof opts.stride === 'number' || opts.stride === undefined ? [opts.stride ?? 1, opts.stride ?? 1] : opts.stride;
    const p = opts.padding ?? 0;
    const [pt, pl, pb, pr] = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : p;
    const up = opts.upsample ?? 1;
    const ho = Math.floor((x.shape[1] * up + pt + pb - wv.shape[1]) / sh) + 1;
    const wo = Math.floor((x.shape[2] * up + pl + pr - wv.shape[2]) / sw) + 1;
    const out = [x.shape[0], ho, wo, wv.shape[0]];
    if (opts.residual && !eqShape(opts.residual.shape, out)) this.fail('conv2d', `residual ${str(opts.residual.shape)} must be ${str(out)}`);
    const inputs = [x, wv, bv, opts.residual];
    while (inputs.length > 2 && inputs[inputs.length - 1] === undefined) inputs.pop();
    return this.node('conv2d', inputs, [sh, sw, pt, pl, pb, pr, up, opts.act ?? Act.None], out, opts.name);
  }

  /** A 3x3 stride-1 convolution by Winograd F(2x2, 3x3); u from prepareWinogradWeight ([16, Co, Ci]). */
  conv2dWinograd(x: Value, u: Value | NativeTensor, bias?: Value | NativeTensor, opts: Omit<Conv2dOptions, 'stride'> & { name?: string } = {}): Value {
    const uv = this.asConst(u);
    const bv = bias ? this.asConst(bias) : undefined;
    if (x.rank !== 4 || uv.rank !== 3 || uv.shape[0] !== 16 || uv.shape[2] !== x.shape[3]) this.fail('conv2d_winograd', `x ${str(x.shape)} does not match u ${str(uv.shape)} ([16, Co, Ci])`);
    const p = opts.padding ?? 0;
    const [pt, pl, pb, pr] = typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : p;
    const up = opts.upsample ?? 1;
    const out = [x.shape[0], x.shape[1] * up + pt + pb - 2, x.shape[2] * up + pl + pr - 2, uv.shape[1]];
    if (opts.residual && !eqShape(opts.residual.shape, out)) this.fail('conv2d_winograd', `residual ${str(opts.residual.shape)} must be ${str(out)}`);
    const inputs = [x, uv, bv, opts.residual];
    while (inputs.length > 2 && inputs[inputs.length - 1] === undefined) inputs.pop();
    return this.node('conv2d_winograd', inputs, [pt, pl, pb, pr, up, opts.act ?? Act.None], out, opts.name);
  }

  groupNorm(x: Value, gamma: Value | NativeTensor, beta: Value | NativeTensor, groups: number, eps: number, act: Act = Act.None): Value {
    const c = x.shape[x.rank - 1];
    if (c % groups !== 0) this.fail('group_norm', `${c} channels are not divisible by ${groups} groups`);
    return this.node('group_norm', [x, this.asConst(gamma), this.asConst(beta)], [groups, eps, act], [...x.shape]);
  }

  layerNorm(x: Value, gamma: Value | NativeTensor, beta: Value | NativeTensor, eps: number): Value {
    return this.node('layer_norm', [x, this.asConst(gamma), this.asConst(beta)], [eps], [...x.shape]);
  }

  /** q[B, Nq, H*D], k[B, Nk, H*D], v[B, Nk, H*Dv] -> [B, Nq, H*Dv] */
  attention(q: Value, k: Value, v: Value, heads: number, scale: number, causal = false): Value {
    if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) this.fail('attention', 'q, k, v must be [B, N, H*D]');
    if (q.shape[2] !== k.shape[2] || k.shape[1] !== v.shape[1]) this.fail('attention', `q ${str(q.shape)}, k ${str(k.shape)}, v ${str(v.shape)} do not match`);
    return this.node('attention', [q, k, v], [heads, scale, causal ? 1 : 0], [q.shape[0], q.shape[1], v.shape[2]]);
  }

  private broadcastCheck(op: string, a: Value, b: Value): void {
    if (b.rank > a.rank) this.fail(op, `b ${str(b.shape)} has more dims than a ${str(a.shape)}`);
    for (let i = 1; i <= b.rank; i++) {
      const db = b.shape[b.rank - i], da = a.shape[a.rank - i];
      if (db !== da && db !== 1) this.fail(op, `b ${str(b.shape)} does not broadcast to a ${str(a.shape)}`);
    }
  }

  add(a: Value, b: Value | NativeTensor): Value {
    const bv = this.asConst(b);
    this.broadcastCheck('add', a, bv);
    return this.node('add', [a, bv], [], [...a.shape]);
  }

  mul(a: Value, b: Value | NativeTensor): Value {
    const bv = this.asConst(b);
    this.broadcastCheck('mul', a, bv);
    return this.node('mul', [a, bv], [], [...a.shape]);
  }

  unary(x: Value, o: UnaryOptions): Value {
    return this.node('unary', [x], [o.act ?? Act.None, o.a ?? 1, o.b ?? 0, o.c ?? 1, o.d ?? 0, o.lo ?? -Infinity, o.hi ?? Infinity], [...x.shape]);
  }

  act(x: Value, act: Act): Value {
    return this.unary(x, { act });
  }

  /** y = a * x + b */
  affine(x: Value, a: number, b = 0): Value {
    return this.unary(x, { a, b });
  }

  geglu(x: Value): Value {
    const c = x.shape[x.rank - 1];
    if (c % 2) this.fail('geglu', `last dim ${c} is odd`);
    return this.node('geglu', [x], [], [...x.shape.slice(0, -1), c / 2]);
  }

  concat(a: Value, b: Value): Value {
    if (a.rank !== b.rank || !eqShape(a.shape.slice(0, -1), b.shape.slice(0, -1))) this.fail('concat', `${str(a.shape)} and ${str(b.shape)} differ outside the last dim`);
    return this.node('concat', [a, b], [], [...a.shape.slice(0, -1), a.shape[a.rank - 1] + b.shape[b.rank - 1]]);
  }

  /** nearest upsampling by an integer factor */
  upsample(x: Value, factor = 2): Value {
    return this.resizeNearest(x, x.shape[1] * factor, x.shape[2] * factor);
  }

  /** nearest resize of NHWC x to [B, h, w, C] with torch's index rule (F.interpolate(size=(h, w), mode='nearest')) */
  resizeNearest(x: Value, h: number, w: number): Value {
    if (x.rank !== 4) this.fail('upsample', `x must be NHWC, got ${str(x.shape)}`);
    return this.node('upsample', [x], [h, w], [x.shape[0], h, w, x.shape[3]]);
  }

  /** diffusers get_timestep_embedding (form 'timestep') or LCM's guidance-scale embedding order (form 'guidance'). */
  timestepEmbedding(t: Value, dim: number, flipSinToCos: boolean, shift: number, scale = 1, form: 'timestep' | 'guidance' = 'timestep'): Value {
    if (t.rank !== 1) this.fail('timestep_embedding', `t must be [B], got ${str(t.shape)}`);
    return this.node('timestep_embedding', [t], [dim, flipSinToCos ? 1 : 0, shift, scale, form === 'guidance' ? 1 : 0], [t.shape[0], dim]);
  }

  embedding(ids: Value, table: Value | NativeTensor): Value {
    const tv = this.asConst(table);
    if (ids.dtype !== 'I64') this.fail('embedding', 'ids must be I64');
    return this.node('embedding', [ids, tv], [], [...ids.shape, tv.shape[1]]);
  }

  selectRows(x: Value, index: Value): Value {
    if (x.rank !== 3 || index.dtype !== 'I64') this.fail('select_rows', 'x must be [B, L, C] and index I64 [B]');
    return this.node('select_rows', [x, index], [], [x.shape[0], x.shape[2]]);
  }

  permute(x: Value, perm: number[]): Value {
    if (perm.length !== x.rank) this.fail('permute', `permutation ${str(perm)} for rank ${x.rank}`);
    const attrs = [x.rank, ...perm, ...Array(6 - perm.length).fill(0)];
    return this.node('permute', [x], attrs, perm.map((p) => x.shape[p]));
  }

  reshape(x: Value, shape: number[]): Value {
    if (numel(shape) !== numel(x.shape)) this.fail('reshape', `cannot reshape ${str(x.shape)} to ${str(shape)}`);
    if (shape.length < 1 || shape.length > 6) this.fail('reshape', 'rank must be 1..6');
    return this.node('reshape', [x], [shape.length, ...shape, ...Array(6 - shape.length).fill(0)], [...shape]);
  }

  slice(x: Value, axis: number, start: number, length: number): Value {
    const out = [...x.shape];
    if (axis < 0 || axis >= x.rank || start < 0 || start + length > x.shape[axis]) this.fail('slice', `[${start}, ${start + length}) outside axis ${axis} of ${str(x.shape)}`);
    out[axis] = length;
    return this.node('slice', [x], [axis, start, length], out);
  }

  /**
   * The fused sampler step (see lib/schedulers/types.ts): `out` is the model output, [B, ...] or
   * [2B, ...] for classifier-free guidance ([uncond; cond]); coeffs [8]; returns prev or denoised.
   */
  schedulerStep(x: Value, out: Value, coeffs: Value, noise: Value | undefined, select: 'prev' | 'denoised'): Value {
    const doubled = [x.shape[0] * 2, ...x.shape.slice(1)];
    if (!eqShape(out.shape, x.shape) && !eqShape(out.shape, doubled)) this.fail('scheduler_step', `out ${str(out.shape)} must be ${str(x.shape)} or ${str(doubled)}`);
    if (!eqShape(coeffs.shape, [8])) this.fail('scheduler_step', 'coeffs must be [8]');
    if (noise && !eqShape(noise.shape, x.shape)) this.fail('scheduler_step', `noise ${str(noise.shape)} must be ${str(x.shape)}`);
    const inputs = noise ? [x, out, coeffs, noise] : [x, out, coeffs];
    return this.node('scheduler_step', inputs, [select === 'prev' ? 0 : 1], [...x.shape]);
  }

  /** k x k average pooling with stride k (NHWC). */
  avgPool(x: Value, k: number): Value {
    if (x.rank !== 4) this.fail('avg_pool', `x must be NHWC, got ${str(x.shape)}`);
    return this.node('avg_pool', [x], [k], [x.shape[0], Math.floor(x.shape[1] / k), Math.floor(x.shape[2] / k), x.shape[3]]);
  }

  /** NCHW -> NHWC */
  toNHWC(x: Value): Value {
    return this.permute(x, [0, 2, 3, 1]);
  }

  /** NHWC -> NCHW */
  toNCHW(x: Value): Value {
    return this.permute(x, [0, 3, 1, 2]);
  }

  /** Multiply-accumulates of the graph by kind (the cost table's method: conv, linear, QK^T, PV). */
  macs(): { conv: number; linear: number; attentionQK: number; attentionPV: number; total: number } {
    const r = { conv: 0, linear: 0, attentionQK: 0, attentionPV: 0, total: 0 };
    const shape = (id: number) => this.values[id].shape;
    for (const n of this.nodes) {
      const out = numel(shape(n.output));
      const name = OPS_BY_CODE[n.op];
      if (name === 'linear') r.linear += out * shape(n.inputs[1])[1];
      else if (name === 'conv2d') {
        const w = shape(n.inputs[1]);
        r.conv += out * w[1] * w[2] * w[3];
      } else if (name === 'conv2d_winograd') {
        r.conv += out * 9 * shape(n.inputs[1])[2]; // counted as the direct convolution it computes
      } else if (name === 'attention') {
        const [q, k, v] = [shape(n.inputs[0]), shape(n.inputs[1]), shape(n.inputs[2])];
        r.attentionQK += q[0] * q[1] * k[1] * q[2];
        r.attentionPV += q[0] * q[1] * k[1] * v[2];
      }
    }
    r.total = r.conv + r.linear + r.attentionQK + r.attentionPV;
    return r;
  }

  output(name: string, v: Value): void {
    if (this.outputList.some((o) => o.name === name)) throw new ArgumentError(`graph output '${name}' declared twice`);
    this.outputList.push({ name, id: v.id });
  }

  build(): CompiledGraph {
    const inputs = this.inputIds.map((id) => ({ name: this.values[id].name, shape: this.values[id].shape, dtype: this.values[id].dtype }));
    if (this.options.dryRun) return new CompiledGraph(undefined, inputs, this.outputList.map((o) => o.name), this.macs());
    const spec = {
      values: this.values.map((v) => ({ kind: v.kind, dtype: v.dtype, shape: v.shape, name: v.name, const: v.const })),
      consts: this.consts,
      nodes: this.nodes,
      inputs: this.inputIds,
      outputs: this.outputList.map((o) => o.id),
      gemmOperand: this.options.gemmOperand ?? 'F16',
    };
    const native = callNative(() => addon().createGraph(spec, this.device));
    return new CompiledGraph(native, inputs, this.outputList.map((o) => o.name), this.macs());
  }
}

export type GraphInput = NativeTensor | Float32Array | BigInt64Array;

export interface RunProfileEntry {
  op: string;
  seconds: number;
  flops: number;
}

export class CompiledGraph {
  constructor(
    private native: NativeGraph | undefined,
    readonly inputs: { name: string; shape: number[]; dtype: ValueDType }[],
    readonly outputs: string[],
    /** multiply-accumulates per run, by kind */
    readonly macs: { conv: number; linear: number; attentionQK: number; attentionPV: number; total: number },
  ) {}

  get arenaBytes(): number {
    return this.native?.arenaBytes ?? 0;
  }

  get nodeCount(): number {
    return this.native?.nodeCount ?? 0;
  }

  /** Runs on a native thread. Inputs by name; plain arrays are copied into native tensors. */
  /** `repeat`: compute the nodes that many times per call (benchmarks: input and output copies once). */
  async run(inputs: Record<string, GraphInput>, opts: { profile?: boolean; repeat?: number } = {}): Promise<Record<string, NativeTensor> & { profile?: RunProfileEntry[] }> {
    const g = this.native;
    if (!g) throw new OnestepError('ERR_ONESTEP_DISPOSED', 'graph was disposed (or is a dry run)');
    const a = addon();
    const owned: NativeTensor[] = [];
    const args = this.inputs.map((d) => {
      const v = inputs[d.name];
      if (v === undefined) throw new ArgumentError(`graph input '${d.name}' is missing`);
      if (v instanceof Float32Array) {
        const t = callNative(() => a.tensorFromFloat32(d.dtype as NativeDType, d.shape, v));
        owned.push(t);
        return t;
      }
      if (v instanceof BigInt64Array) {
        const t = callNative(() => a.tensorFromBytes('I64', d.shape, v));
        owned.push(t);
        return t;
      }
      return v;
    });
    for (const k of Object.keys(inputs)) if (!this.inputs.some((d) => d.name === k)) throw new ArgumentError(`graph has no input '${k}'`);
    let results: NativeTensor[] & { profile?: RunProfileEntry[] };
    try {
      results = await callNativeAsync(() => g.run(args, opts));
    } finally {
      for (const t of owned) t.dispose();
    }
    const out: Record<string, NativeTensor> & { profile?: RunProfileEntry[] } = {};
    this.outputs.forEach((name, i) => {
      out[name] = results[i];
    });
    if (results.profile) out.profile = results.profile;
    return out;
  }

  dispose(): void {
    this.native?.dispose();
    this.native = undefined;
  }
}

async function callNativeAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await callNative(f);
  } catch (e) {
    throw fromNative(e);
  }
}
