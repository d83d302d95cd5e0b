// Builds a graph of ops in TypeScript and compiles it into a native Graph that runs off the JS
// thread. Every node is checked, and its output shape given, by the graph's own rules
// (native/graph/op_rules.cc through addon.inferNode): this file knows no op's shape rule. Model code uses one GraphBuilder per
// (model, batch, height, width) and keeps the compiled graph.
import { AsyncLocalStorage } from 'async_hooks';
import { ArgumentError, OnestepError, fromNative } from '../errors';
import { type NativeDType, type NativeGraph, type NativeTensor, addon, callNative } from '../native';
import { Act, OP_NAMES, type OpAttrs, type OpName, encodeAttrs, opCode } from './ops';

/** Where a graph runs. */
export type Device = 'cpu' | 'cuda';
/**
 * The tensor-core operand type of a CUDA graph's GEMMs and convolutions (ignored on the CPU):
 * 'F16' by default; 'BF16' where activations may exceed fp16's range (diffusers' force_upcast
 * VAEs such as SDXL's). Accumulation is float32 either way; activations are stored as float32.
 */
export type GemmOperand = 'F16' | 'BF16';
/**
 * The arithmetic of a CPU graph's products: 'fp32' (default), or 'bf16' — the GEMMs on weights
 * (linear layers, convolutions, Winograd's transformed products) and attention's Q K^T and P V
 * take bf16 operands (weights kept as bf16 panels, activations rounded as they are packed) and
 * accumulate in float32 (AVX512_BF16 or AMX-BF16; docs/PERFORMANCE.md gives speed and fidelity).
 * Norms, softmax, the Winograd transforms and the scheduler step stay float32.
 */
export type Precision = 'fp32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16'];

/** The bf16 kernel this CPU runs, or why it has none (precision 'bf16' needs one). */
export function bf16Support(): { kernel: string } | { reason: string } {
  const kernel = addon().gemmInfo().bf16Kernel;
  return kernel ? { kernel } : { reason: "this CPU has neither AVX512_BF16 nor AMX-BF16 (precision 'bf16' needs one; 'fp32' runs everywhere)" };
}

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

/** same on all sides, [vertical, horizontal], or [top, left, bottom, right] -> [top, left, bottom, right] */
function padding(p: Conv2dOptions['padding'] = 0): [number, number, number, number] {
  return typeof p === 'number' ? [p, p, p, p] : p.length === 2 ? [p[0], p[1], p[0], p[1]] : p;
}

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

/** inferNode's answers by node kind (see GraphBuilder.op); never mutated once stored */
const inferred = new Map<string, { shape: number[]; macs: number[] }>();

export class GraphBuilder {
  private readonly values: ValueRecord[] = [];
  private readonly consts: NativeTensor[] = [];
  private readonly constIds = new Map<NativeTensor, number>();
  private readonly nodes: NodeRecord[] = [];
  private readonly inputIds: number[] = [];
  private readonly outputList: { name: string; id: number }[] = [];
  private autoName = 0;
  private readonly macCount = { conv: 0, linear: 0, attentionQK: 0, attentionPV: 0 };

  /**
   * dryRun: build() compiles nothing (the graph only describes; used with recording weights).
   * device: where the graph runs.
   * gemmOperand: see GemmOperand.
   * precision: the CPU backend's GEMM arithmetic (see Precision; a CUDA graph's nodes that fall
   * back to the CPU use it too).
   * label: what the graph computes, in reports (e.g. the weights' label: 'unet /models/x/unet').
   */
  constructor(private readonly options: { dryRun?: boolean; device?: Device; gemmOperand?: GemmOperand; precision?: Precision; label?: string } = {}) {}

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

  /**
   * A node of any op, attributes by name (see OpAttrs). The graph's own rules (native/graph,
   * through the addon) check it and give the output's shape; nothing is re-derived here.
   */
  op<K extends OpName>(op: K, inputs: (Value | NativeTensor | undefined)[], attrs: OpAttrs[K], name?: string): Value {
    const ins = inputs.map((x) => (x === undefined || x instanceof Value ? x : this.constant(x)));
    while (ins.length > 0 && ins[ins.length - 1] === undefined) ins.pop();
    let encoded: number[];
    let info: { shape: number[]; macs: number[] };
    try {
      encoded = encodeAttrs(op, attrs);
      // the rule is a pure function of the op, its inputs' dtypes and shapes and its attributes:
      // asked once per distinct node (a UNet repeats a few hundred kinds; describing stays cheap)
      const key = `${op}|${encoded.join(',')}|${ins.map((v) => (v ? `${v.dtype}${v.shape.join('x')}` : '-')).join(';')}`;
      info = inferred.get(key) as typeof info;
      if (!info) {
        info = addon().inferNode(opCode(op), ins.map((v) => v ?? null), encoded);
        if (inferred.size >= 50000) inferred.clear();
        inferred.set(key, info);
      }
    } catch (e) {
      throw new GraphError((e as Error).message);
    }
    const v = this.addValue({ kind: 2, dtype: 'F32', shape: [...info.shape], name: name ?? `${op}_${this.autoName++}` });
    this.nodes.push({ op: opCode(op), inputs: ins.map((x) => (x ? x.id : -1)), attrs: encoded, output: v.id });
    const m = this.macCount;
    m.conv += info.macs[0];
    m.linear += info.macs[1];
    m.attentionQK += info.macs[2];
    m.attentionPV += info.macs[3];
    return v;
  }

  // ---- ops ------------------------------------------------------------------------------
  /** x[..., K] @ w[N, K]^T (+ bias) -> act -> (+ residual) */
  linear(x: Value, w: Value | NativeTensor, bias?: Value | NativeTensor, opts: { act?: Act; residual?: Value; name?: string } = {}): Value {
    return this.op('linear', [x, w, bias, opts.residual], { act: opts.act }, opts.name);
  }

  /**
   * NHWC convolution; w as checkpoints store it, [Co, Ci, kh, kw]. How it runs (implicit GEMM,
   * Winograd on the CPU: see winogradPolicy) is the backend's choice when the graph is compiled.
   */
  conv2d(x: Value, w: Value | NativeTensor, bias?: Value | NativeTensor, opts: Conv2dOptions & { name?: string } = {}): Value {
    const [sh, sw] = typeof opts.stride === 'number' || opts.stride === undefined ? [opts.stride ?? 1, opts.stride ?? 1] : opts.stride;
    const [pt, pl, pb, pr] = padding(opts.padding);
    const attrs = { stride_h: sh, stride_w: sw, pad_top: pt, pad_left: pl, pad_bottom: pb, pad_right: pr, upsample: opts.upsample, act: opts.act };
    return this.op('conv2d', [x, w, bias, opts.residual], attrs, opts.name);
  }

  groupNorm(x: Value, gamma: Value | NativeTensor, beta: Value | NativeTensor, groups: number, eps: number, act: Act = Act.None): Value {
    return this.op('group_norm', [x, gamma, beta], { groups, eps, act });
  }

  layerNorm(x: Value, gamma: Value | NativeTensor, beta: Value | NativeTensor, eps: number): Value {
    return this.op('layer_norm', [x, gamma, beta], { eps });
  }

  /** q[B, Nq, H*D], k[B, Nk, H*D], v[B, Nk, H*Dv] -> [B, Nq, H*Dv] */
  attention(q: Value, k: Value, v: Value, heads: number, scale: number, causal = false): Value {
    return this.op('attention', [q, k, v], { heads, scale, causal });
  }

  add(a: Value, b: Value | NativeTensor): Value {
    return this.op('add', [a, b], {});
  }

  mul(a: Value, b: Value | NativeTensor): Value {
    return this.op('mul', [a, b], {});
  }

  unary(x: Value, o: UnaryOptions): Value {
    return this.op('unary', [x], { ...o });
  }

  act(x: Value, act: Act): Value {
    return this.unary(x, { act });
  }

  /** y = a * x + b */
  affine(x: Value, a: number, b = 0): Value {
    return this.unary(x, { a, b });
  }

  geglu(x: Value): Value {
    return this.op('geglu', [x], {});
  }

  concat(a: Value, b: Value): Value {
    return this.op('concat', [a, b], {});
  }

  /** nearest upsampling by an integer factor */
  upsample(x: Value, factor = 2): Value {
    return this.resizeNearest(x, x.shape[1] * factor, x.shape[2] * factor);
  }

  /** nearest resize of NHWC x to [B, h, w, C] with torch's index rule (F.interpolate(size=(h, w), mode='nearest')) */
  resizeNearest(x: Value, h: number, w: number): Value {
    return this.op('upsample', [x], { out_h: h, out_w: w });
  }

  /** diffusers get_timestep_embedding (form 'timestep') or LCM's guidance-scale embedding order (form 'guidance'). */
  timestepEmbedding(t: Value, dim: number, flipSinToCos: boolean, shift: number, scale = 1, form: 'timestep' | 'guidance' = 'timestep'): Value {
    return this.op('timestep_embedding', [t], { dim, flip_sin_to_cos: flipSinToCos, shift, scale, form: form === 'guidance' ? 1 : 0 });
  }

  embedding(ids: Value, table: Value | NativeTensor): Value {
    return this.op('embedding', [ids, table], {});
  }

  selectRows(x: Value, index: Value): Value {
    return this.op('select_rows', [x, index], {});
  }

  permute(x: Value, perm: number[]): Value {
    const attrs: Record<string, number> = { rank: perm.length };
    perm.forEach((p, i) => (attrs[`axis${i}`] = p));
    return this.op('permute', [x], attrs as OpAttrs['permute']);
  }

  reshape(x: Value, shape: number[]): Value {
    const attrs: Record<string, number> = { rank: shape.length };
    shape.forEach((d, i) => (attrs[`dim${i}`] = d));
    return this.op('reshape', [x], attrs as OpAttrs['reshape']);
  }

  slice(x: Value, axis: number, start: number, length: number): Value {
    return this.op('slice', [x], { axis, start, length });
  }

  /**
   * The fused sampler step (see lib/schedulers/types.ts): `out` is the model output, [B, ...] or
   * [2B, ...] for classifier-free guidance ([uncond; cond]); coeffs [8]; returns prev or denoised.
   */
  schedulerStep(x: Value, out: Value, coeffs: Value, noise: Value | undefined, select: 'prev' | 'denoised'): Value {
    return this.op('scheduler_step', [x, out, coeffs, noise], { select: select === 'prev' ? 0 : 1 });
  }

  /** k x k average pooling with stride k (NHWC). */
  avgPool(x: Value, k: number): Value {
    return this.op('avg_pool', [x], { k });
  }

  /** NCHW -> NHWC */
  toNHWC(x: Value): Value {
    return this.permute(x, [0, 2, 3, 1]);
  }

  /** NHWC -> NCHW */
  toNCHW(x: Value): Value {
    return this.permute(x, [0, 3, 1, 2]);
  }

  /** The op of every node so far, in order. */
  nodeOps(): OpName[] {
    return this.nodes.map((n) => OP_NAMES[n.op]);
  }

  /** Multiply-accumulates of the graph by kind (the cost table's method: conv, linear, QK^T, PV), from the graph's rules. */
  macs(): { conv: number; linear: number; attentionQK: number; attentionPV: number; total: number } {
    const m = this.macCount;
    return { ...m, total: m.conv + m.linear + m.attentionQK + m.attentionPV };
  }

  output(name: string, v: Value): void {
    if (this.outputList.some((o) => o.name === name)) throw new ArgumentError(`graph output '${name}' declared twice`);
    this.outputList.push({ name, id: v.id });
  }

  /**
   * Compiles the graph: validation, the backends' plans (algorithms, weights in their own
   * layouts, uploads) run on a worker thread, never on the JS thread. The CompiledGraph is usable
   * at once; its first run waits for the compilation (ready() to wait earlier), and a compilation
   * error rejects that run.
   */
  build(): CompiledGraph {
    const inputs = this.inputIds.map((id) => ({ name: this.values[id].name, shape: this.values[id].shape, dtype: this.values[id].dtype }));
    const outputs = this.outputList.map((o) => o.name);
    const about = { label: this.options.label ?? 'graph', device: this.device };
    if (this.options.dryRun) return new CompiledGraph(undefined, inputs, outputs, this.macs(), this.nodes.length, about);
    const spec = {
      values: this.values.map((v) => ({ kind: v.kind, dtype: v.dtype, shape: v.shape, name: v.name, const: v.const })),
      consts: this.consts,
      nodes: this.nodes,
      inputs: this.inputIds,
      outputs: this.outputList.map((o) => o.id),
      gemmOperand: this.options.gemmOperand ?? 'F16',
      cpuGemmOperand: this.options.precision === 'bf16' ? ('BF16' as const) : ('F32' as const),
    };
    const native = callNative(() => addon().createGraph(spec, this.device));
    return new CompiledGraph(native, inputs, outputs, this.macs(), this.nodes.length, about);
  }
}

/** Nodes of a graph that its device does not run (the CPU does), grouped by op and reason. */
export interface GraphFallback {
  /** the graph's label (e.g. 'unet /models/sd-turbo/unet') */
  graph: string;
  op: string;
  /** how many of its nodes */
  nodes: number;
  /** the device backend's words (e.g. 'attention: head size 520 is above the CUDA kernel's 512') */
  reason: string;
}

const fallbackListeners = new AsyncLocalStorage<(fallbacks: readonly GraphFallback[]) => void>();

/**
 * Runs `fn`; each graph with fallback nodes that runs inside it (across awaits) reports them to
 * `listener` (once per run of that graph). How a generation learns what ran on the CPU.
 */
export function withFallbackReports<T>(listener: (fallbacks: readonly GraphFallback[]) => void, fn: () => T): T {
  return fallbackListeners.run(listener, fn);
}

function groupFallbacks(label: string, placements: NodePlacement[]): GraphFallback[] {
  const groups = new Map<string, GraphFallback>();
  for (const p of placements) {
    if (!p.fallback) continue;
    const reason = p.reason ?? '';
    const key = `${p.op}\u0000${reason}`;
    const g = groups.get(key);
    if (g) g.nodes++;
    else groups.set(key, { graph: label, op: p.op, nodes: 1, reason });
  }
  return [...groups.values()];
}

export type GraphInput = NativeTensor | Float32Array | BigInt64Array;

export interface RunProfileEntry {
  op: string;
  /** the backend that ran the node ('cpu', 'cuda') */
  backend: string;
  /** its choice of algorithm ('' where the op has one way), e.g. conv2d: 'winograd', 'implicit_gemm', 'gemm_1x1' */
  algorithm: string;
  seconds: number;
  flops: number;
  /** CPU time of the process (all threads) while it ran, on the CPU backend: cpuSeconds / seconds is how many cores it kept busy */
  cpuSeconds?: number;
}

/** Where and how a node runs. */
export interface NodePlacement {
  op: string;
  backend: string;
  algorithm: string;
  /** the graph's device cannot run it: the CPU does, with the copies planned */
  fallback: boolean;
  /** why it fell back (the device backend's words) */
  reason?: string;
  /** on CUDA: how the node's output is stored ('F32', or the graph's 16-bit type 'F16' / 'BF16') */
  storage?: string;
}

export class CompiledGraph {
  private native: NativeGraph | undefined;
  private fallbackList: readonly GraphFallback[] = [];
  private readonly compiling: Promise<NativeGraph> | undefined;
  private disposed = false;

  constructor(
    compiling: Promise<NativeGraph> | undefined,
    readonly inputs: { name: string; shape: number[]; dtype: ValueDType }[],
    readonly outputs: string[],
    /** multiply-accumulates per run, by kind */
    readonly macs: { conv: number; linear: number; attentionQK: number; attentionPV: number; total: number },
    /** nodes in the graph */
    readonly nodeCount: number,
    about: { label: string; device: Device } = { label: 'graph', device: 'cpu' },
  ) {
    if (compiling) {
      this.compiling = compiling.then((g) => {
        if (this.disposed) {
          g.dispose();
          throw new OnestepError('ERR_ONESTEP_DISPOSED', 'graph was disposed');
        }
        this.native = g;
        // a CPU graph runs everything itself; elsewhere the nodes its device does not run
        if (about.device !== 'cpu') this.fallbackList = Object.freeze(groupFallbacks(about.label, callNative(() => g.placements())));
        return g;
      });
      this.compiling.catch(() => undefined); // reported by ready() / run(), never as an unhandled rejection
    }
  }

  /** Resolves when the graph is compiled (rejects with the compilation's error). */
  async ready(): Promise<void> {
    await this.compiled();
  }

  private async compiled(): Promise<NativeGraph> {
    if (this.disposed) throw new OnestepError('ERR_ONESTEP_DISPOSED', 'graph was disposed');
    if (!this.compiling) throw new OnestepError('ERR_ONESTEP_DISPOSED', 'graph is a dry run (it describes; it does not run)');
    try {
      return await this.compiling;
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Bytes of its activation arena (0 until compiled); on CUDA the device arena, 16-bit activations taking half. */
  get arenaBytes(): number {
    return this.native?.arenaBytes ?? 0;
  }

  /** Once compiled: the nodes its device does not run, grouped by op and reason ([] on the CPU). */
  get fallbacks(): readonly GraphFallback[] {
    return this.fallbackList;
  }

  /** Per node, once compiled: the backend that runs it and its algorithm. */
  async placements(): Promise<NodePlacement[]> {
    const g = await this.compiled();
    return callNative(() => g.placements());
  }

  /** Runs on a native thread. Inputs by name; plain arrays are copied into native tensors. */
  /** `repeat`: compute the nodes that many times per call (benchmarks: input and output copies once). */
  async run(inputs: Record<string, GraphInput>, opts: { profile?: boolean; repeat?: number } = {}): Promise<Record<string, NativeTensor> & { profile?: RunProfileEntry[] }> {
    for (const k of Object.keys(inputs)) if (!this.inputs.some((d) => d.name === k)) throw new ArgumentError(`graph has no input '${k}'`);
    for (const d of this.inputs) if (inputs[d.name] === undefined) throw new ArgumentError(`graph input '${d.name}' is missing`);
    const g = await this.compiled();
    if (this.disposed) throw new OnestepError('ERR_ONESTEP_DISPOSED', 'graph was disposed');
    if (this.fallbackList.length) fallbackListeners.getStore()?.(this.fallbackList);
    const a = addon();
    const owned: NativeTensor[] = [];
    let results: NativeTensor[] & { profile?: RunProfileEntry[] };
    try {
      const args = this.inputs.map((d) => {
        const v = inputs[d.name];
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
    this.disposed = true;
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
