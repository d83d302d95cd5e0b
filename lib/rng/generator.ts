// TorchGenerator: torch.Generator('cpu') reproduced bit for bit (native/rng/torch_generator.cc).
// `new TorchGenerator(seed).randn([1, 4, 64, 64])` gives the same float32 values as
// `torch.randn((1, 4, 64, 64), generator=torch.Generator('cpu').manual_seed(seed))` — the latents
// diffusers' randn_tensor draws for a CPU generator. See docs/RNG.md.
import { AddonLoadError, ArgumentError } from '../errors';
import { addon, callNative } from '../native';

/** Output dtypes: float32, float16 (a different algorithm from float32 cast to half), float64. */
export type RngDType = 'F32' | 'F16' | 'F64';

/**
 * Which CPU kernel's arithmetic randn reproduces for float32 tensors of >= 16 elements (the only
 * case where they differ, by up to ~2e-6 in ~39 % of elements):
 * - 'avx2': PyTorch's AVX2 kernels (Cephes-style polynomials with fused multiply-adds): what
 *   torch uses on typical x86-64 machines (`torch.backends.cpu.get_cpu_capability()` = 'AVX2').
 * - 'generic': PyTorch's default kernels (glibc logf/cosf/sinf): torch with
 *   ATEN_CPU_CAPABILITY=default, and per PyTorch's source its AVX-512 kernels and ARM builds.
 */
export type NormalVariant = 'generic' | 'avx2';

/** The default variant: 'avx2', what PyTorch computes on the x86-64 CPUs most users run it on. */
export const DEFAULT_NORMAL_VARIANT: NormalVariant = 'avx2';

/** torch's default CPU seed (what an unseeded torch.Generator('cpu') starts from). */
export const DEFAULT_TORCH_SEED = 67280421310721n;

/** At most this many elements per call (1 GiB of float32). */
export const MAX_RNG_NUMEL = 2 ** 28;

/** A torch seed: an integer number (|seed| <= 2^53 - 1) or a bigint in [-2^63, 2^64). */
export type Seed = number | bigint;

/** A tensor shape, or a plain element count for a 1-D tensor. */
export type RngShape = number | readonly number[];

export interface TorchGeneratorOptions {
  /** randn's float32 kernel variant; default DEFAULT_NORMAL_VARIANT ('avx2'). */
  variant?: NormalVariant;
}

/** The native generator (native/napi/js_generator.h). */
export interface NativeTorchGenerator {
  manualSeed(seed: Seed): NativeTorchGenerator;
  initialSeed(): bigint;
  randn(numel: number, dtype: RngDType, variant: NormalVariant): Float32Array | Float64Array;
  rand(numel: number, dtype: RngDType): Float32Array | Float64Array;
  randint(low: number | bigint, high: number | bigint, numel: number): BigInt64Array;
  random(count: number): Uint32Array;
  getState(): Uint8Array;
  setState(state: Uint8Array): NativeTorchGenerator;
  readonly hasCachedNormal: boolean;
}

interface NativeRngAddon {
  createGenerator(seed: Seed): NativeTorchGenerator;
}

function rngAddon(): NativeRngAddon {
  const a = addon() as unknown as Partial<NativeRngAddon>;
  if (typeof a.createGenerator !== 'function') {
    throw new AddonLoadError('the loaded onestep native addon has no torch-compatible generator (rebuild it: npm run build:native)');
  }
  return a as NativeRngAddon;
}

const DTYPES: readonly RngDType[] = ['F32', 'F16', 'F64'];
const VARIANTS: readonly NormalVariant[] = ['generic', 'avx2'];
const INT64_MIN = -(2n ** 63n);
const UINT64_END = 2n ** 64n;
const INT64_END = 2n ** 63n;

function describe(v: unknown): string {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/** Validates a seed (throws ArgumentError); torch accepts negative seeds as two's complement. */
export function checkSeed(seed: unknown, what = 'seed'): Seed {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed)) {
      throw new ArgumentError(`${what} must be an integer with |${what}| <= 2^53 - 1 (use a bigint for larger seeds), got ${describe(seed)}`);
    }
    return seed;
  }
  if (typeof seed === 'bigint') {
    if (seed < INT64_MIN || seed >= UINT64_END) throw new ArgumentError(`${what} must be in [-2^63, 2^64), got ${describe(seed)}`);
    return seed;
  }
  throw new ArgumentError(`${what} must be an integer number or a bigint, got ${describe(seed)}`);
}

/** Element count of a shape (a number means a 1-D tensor); throws ArgumentError. */
export function rngNumel(shape: unknown, what = 'shape'): number {
  const dims = typeof shape === 'number' ? [shape] : shape;
  if (!Array.isArray(dims)) throw new ArgumentError(`${what} must be an array of dimensions or an element count, got ${describe(shape)}`);
  let n = 1;
  for (const d of dims as unknown[]) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new ArgumentError(`${what} must hold non-negative integers, got ${describe(d)} in [${(dims as unknown[]).map(describe).join(', ')}]`);
    }
    n *= d;
    if (n > MAX_RNG_NUMEL) throw new ArgumentError(`${what} [${dims.join(', ')}] has more than ${MAX_RNG_NUMEL} elements`);
  }
  return n;
}

function checkDType(dtype: unknown): RngDType {
  if (!(DTYPES as readonly unknown[]).includes(dtype)) {
    throw new ArgumentError(`dtype must be one of ${DTYPES.map((d) => `'${d}'`).join(', ')}, got ${describe(dtype)}`);
  }
  return dtype as RngDType;
}

function checkVariant(variant: unknown): NormalVariant {
  if (!(VARIANTS as readonly unknown[]).includes(variant)) {
    throw new ArgumentError(`variant must be 'generic' or 'avx2', got ${describe(variant)}`);
  }
  return variant as NormalVariant;
}

function checkInt64(v: unknown, what: string): number | bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ArgumentError(`${what} must be a safe integer or a bigint, got ${describe(v)}`);
    return v;
  }
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v >= INT64_END) throw new ArgumentError(`${what} must fit in int64, got ${describe(v)}`);
    return v;
  }
  throw new ArgumentError(`${what} must be an integer number or a bigint, got ${describe(v)}`);
}

/**
 * torch.Generator('cpu'): the mt19937 engine with torch's seeding and its rand / randint / randn
 * algorithms, bit-exact against PyTorch (1.13 reference fixtures). One generator is one stream:
 * calls consume it in order, as in torch, including randn's cached Box-Muller sample for tensors
 * of fewer than 16 elements.
 */
export class TorchGenerator {
  /** randn's float32 kernel variant for this generator. */
  readonly variant: NormalVariant;
  private readonly native: NativeTorchGenerator;

  constructor(seed: Seed = DEFAULT_TORCH_SEED, options: TorchGeneratorOptions = {}) {
    if (options === null || typeof options !== 'object') throw new ArgumentError('TorchGenerator options must be an object');
    this.variant = options.variant === undefined ? DEFAULT_NORMAL_VARIANT : checkVariant(options.variant);
    const s = checkSeed(seed);
    const native = rngAddon();
    this.native = callNative(() => native.createGenerator(s));
  }

  /** torch's manual_seed: reseeds (only the low 32 bits reach the engine) and clears the cached normal. */
  manualSeed(seed: Seed): this {
    const s = checkSeed(seed);
    callNative(() => this.native.manualSeed(s));
    return this;
  }

  /** torch's initial_seed(): the full 64-bit seed last set (negative seeds in two's complement). */
  initialSeed(): bigint {
    return callNative(() => this.native.initialSeed());
  }

  /**
   * torch.randn(shape, generator=g, dtype=...). float32 and float16 results come as a Float32Array
   * (float16 values are exact in float32), float64 as a Float64Array. `variant` overrides the
   * generator's variant for this call.
   */
  randn(shape: RngShape, options?: { dtype?: 'F32' | 'F16'; variant?: NormalVariant }): Float32Array;
  randn(shape: RngShape, options: { dtype: 'F64'; variant?: NormalVariant }): Float64Array;
  randn(shape: RngShape, options?: { dtype?: RngDType; variant?: NormalVariant }): Float32Array | Float64Array;
  randn(shape: RngShape, options: { dtype?: RngDType; variant?: NormalVariant } = {}): Float32Array | Float64Array {
    const n = rngNumel(shape);
    const dtype = options.dtype === undefined ? 'F32' : checkDType(options.dtype);
    const variant = options.variant === undefined ? this.variant : checkVariant(options.variant);
    return callNative(() => this.native.randn(n, dtype, variant));
  }

  /** torch.rand(shape, generator=g, dtype=...): uniforms in [0, 1). */
  rand(shape: RngShape, options?: { dtype?: 'F32' | 'F16' }): Float32Array;
  rand(shape: RngShape, options: { dtype: 'F64' }): Float64Array;
  rand(shape: RngShape, options?: { dtype?: RngDType }): Float32Array | Float64Array;
  rand(shape: RngShape, options: { dtype?: RngDType } = {}): Float32Array | Float64Array {
    const n = rngNumel(shape);
    const dtype = options.dtype === undefined ? 'F32' : checkDType(options.dtype);
    return callNative(() => this.native.rand(n, dtype));
  }

  /** torch.randint(low, high, shape, generator=g): int64 values in [low, high). */
  randint(low: number | bigint, high: number | bigint, shape: RngShape): BigInt64Array {
    const lo = checkInt64(low, 'low');
    const hi = checkInt64(high, 'high');
    if (!(BigInt(lo) < BigInt(hi))) throw new ArgumentError(`randint: low (${lo}) must be less than high (${hi})`);
    const n = rngNumel(shape);
    return callNative(() => this.native.randint(lo, hi, n));
  }

  /** The next raw 32-bit engine outputs (torch's generator.random()). */
  random(count: number): Uint32Array {
    const n = rngNumel(count, 'count');
    return callNative(() => this.native.random(n));
  }

  /** torch.Generator.get_state(): 5056 bytes in torch's layout (loadable with set_state). */
  getState(): Uint8Array {
    return callNative(() => this.native.getState());
  }

  /** torch.Generator.set_state(bytes): 5056 bytes (or torch's legacy 5048). */
  setState(state: Uint8Array): this {
    if (!(state instanceof Uint8Array)) throw new ArgumentError('setState: state must be a Uint8Array (torch.Generator.get_state() bytes)');
    callNative(() => this.native.setState(state));
    return this;
  }

  /** Whether randn's < 16-element path holds a cached sample for its next value. */
  get hasCachedNormal(): boolean {
    return this.native.hasCachedNormal;
  }
}
