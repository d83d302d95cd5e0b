// Scoped access to a checkpoint's weights, mirroring the checkpoint's own names:
//   w.scope('down_blocks.0.resnets.1').get('conv1.weight', [320, 320, 3, 3])
// fails with the full key and both shapes. Converted tensors (float32 copies of small vectors,
// prepared conv kernels) are cached, so graphs for several shapes share them.
import { WeightError } from '../errors';
import { type Device, type GemmOperand, GraphBuilder, type Precision } from '../graph';
import { type NativeDType, type NativeTensor, addon, callNative } from '../native';
import type { TensorSource } from '../safetensors';

const str = (s: readonly number[]) => `[${s.join(', ')}]`;

class Store {
  readonly used = new Set<string>();
  readonly cache = new Map<string, NativeTensor>();
  /** weights replaced by fused versions (LoRA), by full key */
  overrides = new Map<string, NativeTensor>();
  constructor(
    readonly checkpoint: TensorSource | undefined,
    readonly label: string,
    /** recording mode: every weight asked for, with its shape (see Weights.recording) */
    readonly recorded?: Map<string, number[]>,
    /** where the model's graphs run */
    readonly device: Device = 'cpu',
    /** the CPU arithmetic of its GEMMs */
    readonly precision: Precision = 'fp32',
  ) {}
}

/** A stand-in tensor for recording mode: it has a shape and a dtype and no data. */
function placeholder(shape: readonly number[], dtype: NativeDType): NativeTensor {
  const fail = (): never => {
    throw new WeightError('', 'recording-mode weights hold no data');
  };
  return { dtype, shape: [...shape], nbytes: 0, toFloat32: fail, toRgb8: fail, bytes: fail, dispose: () => undefined };
}

/** Where a model's graphs run, and with what arithmetic on the CPU. */
export interface ModelTarget {
  device?: Device;
  precision?: Precision;
}

/** How a model is loaded from a folder: the weight variant to prefer, and its target. */
export interface ModelLoadOptions extends ModelTarget {
  variant?: string;
}

export class Weights {
  private constructor(
    private readonly store: Store,
    readonly prefix: string,
  ) {}

  static of(checkpoint: TensorSource, label: string, target: ModelTarget = {}): Weights {
    return new Weights(new Store(checkpoint, label, undefined, target.device ?? 'cpu', target.precision ?? 'fp32'), '');
  }

  /**
   * Weights that hold nothing but record every key and shape the model code asks for (has()
   * answers false, so optional alternative layouts take the diffusers default). Graphs built
   * from them are dry runs. Used to write random-weight checkpoints in real architectures.
   */
  static recording(label = 'recording'): Weights {
    return new Weights(new Store(undefined, label, new Map()), '');
  }

  /** The keys and shapes recorded so far (recording mode only). */
  recordedShapes(): Map<string, number[]> {
    return new Map(this.store.recorded ?? []);
  }

  /** The device the graphs of these weights run on. */
  get device(): Device {
    return this.store.device;
  }

  get recording(): boolean {
    return this.store.recorded !== undefined;
  }

  /** A graph builder for these weights (a dry run in recording mode). */
  builder(options: { gemmOperand?: GemmOperand } = {}): GraphBuilder {
    return new GraphBuilder({ dryRun: this.recording, device: this.store.device, precision: this.store.precision, label: this.store.label, ...options });
  }

  private get checkpoint(): TensorSource {
    if (!this.store.checkpoint) throw new WeightError('', `${this.store.label}: no checkpoint`);
    return this.store.checkpoint;
  }

  scope(sub: string): Weights {
    return new Weights(this.store, this.key(sub));
  }

  key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }

  has(name: string): boolean {
    return this.store.checkpoint ? this.store.checkpoint.has(this.key(name)) : false;
  }

  /** The stored shape of a weight (which must exist). */
  shapeOf(name: string): number[] {
    return this.checkpoint.info(this.key(name)).shape;
  }

  /** The stored tensor (a zero-copy view, any float dtype), checked against `shape`. */
  get(name: string, shape: readonly number[]): NativeTensor {
    const key = this.key(name);
    const override = this.store.overrides.get(key);
    if (override) {
      if (override.shape.length !== shape.length || override.shape.some((d, i) => d !== shape[i])) {
        throw new WeightError(key, `${this.store.label}: fused weight '${key}' has shape ${str(override.shape)}, expected ${str(shape)}`);
      }
      this.store.used.add(key);
      return override;
    }
    if (this.store.recorded) {
      this.store.recorded.set(key, [...shape]);
      return placeholder(shape, 'F16');
    }
    if (!this.store.checkpoint?.has(key)) {
      throw new WeightError(key, `${this.store.label}: missing weight '${key}' (expected shape ${str(shape)})`);
    }
    const info = this.checkpoint.info(key);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightError(key, `${this.store.label}: weight '${key}' has shape ${str(info.shape)}, expected ${str(shape)}`);
    }
    if (!['F32', 'F16', 'BF16'].includes(info.dtype)) {
      throw new WeightError(key, `${this.store.label}: weight '${key}' is ${info.dtype}; weights must be F32, F16 or BF16`);
    }
    this.store.used.add(key);
    return this.checkpoint.tensor(key);
  }

  private cached(tag: string, key: string, make: () => NativeTensor): NativeTensor {
    const k = `${tag}:${key}`;
    let t = this.store.cache.get(k);
    if (!t) {
      t = make();
      this.store.cache.set(k, t);
    }
    return t;
  }

  /** A weight used as a GEMM operand (linear layer [N, K]): kept in its stored dtype, zero-copy. */
  matrix(name: string, shape: readonly [number, number]): NativeTensor {
    return this.cached('raw', this.key(name), () => this.get(name, shape));
  }

  /** A small vector or table converted to float32 (biases, norm scales). */
  f32(name: string, shape: readonly number[]): NativeTensor {
    return this.cached('f32', this.key(name), () => {
      const t = this.get(name, shape);
      if (this.recording) return placeholder(shape, 'F32');
      const v = t.toFloat32();
      return callNative(() => addon().tensorFromFloat32('F32', [...shape], v));
    });
  }

  /**
   * A convolution kernel [Co, Ci, kh, kw] as stored (zero-copy): each backend makes its own layout
   * of it when a graph is compiled, off the JS thread (native/graph/derived.h).
   */
  conv(name: string, shape: readonly [number, number, number, number]): NativeTensor {
    return this.cached('raw', this.key(name), () => this.get(name, shape));
  }

  /** Every tensor name of the checkpoint (full keys). */
  keys(): string[] {
    return this.store.checkpoint ? this.store.checkpoint.names() : [];
  }

  /** The checkpoint's own tensor for a full key (ignoring fused replacements), or undefined. */
  base(key: string): NativeTensor | undefined {
    return this.store.checkpoint?.has(key) ? this.store.checkpoint.tensor(key) : undefined;
  }

  /**
   * Replaces stored weights by full key (LoRA fusion); an empty map restores the checkpoint's own.
   * Converted copies of the affected weights are dropped; graphs built before must be rebuilt.
   * Returns the keys whose weights changed. The caller owns the tensors it passes.
   */
  setOverrides(overrides: Map<string, NativeTensor>): string[] {
    const changed = new Set([...this.store.overrides.keys(), ...overrides.keys()]);
    for (const key of changed) {
      for (const tag of ['raw', 'f32']) {
        const t = this.store.cache.get(`${tag}:${key}`);
        if (!t) continue;
        this.store.cache.delete(`${tag}:${key}`);
        if (tag !== 'raw') t.dispose();
      }
    }
    this.store.overrides = new Map(overrides);
    return [...changed];
  }

  /** Keys of the checkpoint under this scope that no model code has read. */
  unused(): string[] {
    const p = this.prefix ? `${this.prefix}.` : '';
    return this.store.checkpoint ? this.store.checkpoint.names().filter((k) => k.startsWith(p) && !this.store.used.has(k)) : [];
  }

  /**
   * Releases every converted tensor and the checkpoint's mapping now, rather than when the
   * garbage collector gets to them. Graphs built from these weights must not run afterwards.
   */
  close(): void {
    for (const t of this.store.cache.values()) t.dispose();
    this.store.cache.clear();
    this.store.checkpoint?.close();
  }
}
