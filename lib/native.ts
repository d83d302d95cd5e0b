// Loads the native addon (a matching prebuild from prebuilds/<platform>-<arch>/, else build/Release)
// and types what it exports. Everything native goes through here.
import * as fs from 'fs';
import * as path from 'path';
import { AddonLoadError, fromNative } from './errors';

export type NativeDType = 'F32' | 'F16' | 'BF16' | 'I64';

/** A tensor living in native memory (owned, or a zero-copy view of a mapped file). */
export interface NativeTensor {
  readonly dtype: NativeDType;
  readonly shape: number[];
  readonly nbytes: number;
  /** A copy of the values converted to float32. */
  toFloat32(): Float32Array;
  /** one image of a decoded [B, 3, H, W] F32 tensor as RGB bytes (diffusers' postprocess), its [0, 1] image into `unit` if given */
  toRgb8(batchIndex: number, unit?: Float32Array): Uint8Array;
  /** A copy of the raw little-endian bytes. */
  bytes(): Buffer;
  /** Releases the memory now instead of at garbage collection. */
  dispose(): void;
}

export interface NativeMappedFile {
  readonly size: number;
  readonly path: string;
  tensor(name: string, dtype: string, shape: number[], begin: number, end: number): NativeTensor;
  readBytes(begin: number, end: number): Buffer;
  close(): void;
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  totalMemory: number;
  freeMemory: number;
  computeCapability: string;
  multiprocessors: number;
}

export interface NativeCudaStatus {
  libraryPath: string;
  libraryLoaded: boolean;
  buildInfo: string;
  usable: boolean;
  reason: string;
  /** JSON array of MathLibraryInfo (the vendor libraries the CUDA library loaded or looked for) */
  mathLibraries: string;
  devices: NativeCudaDevice[];
}

export interface NativeGraphSpec {
  values: { kind: number; dtype: string; shape: number[]; name: string; const?: number }[];
  consts: NativeTensor[];
  nodes: { op: number; inputs: number[]; attrs: number[]; output: number }[];
  inputs: number[];
  outputs: number[];
  /** CUDA: the dtype GEMM and convolution weights are uploaded as, and their operands rounded to */
  gemmOperand?: 'F16' | 'BF16';
  /** CPU: GEMMs on constant weights with bf16 operands (float32 accumulation), or float32 */
  cpuGemmOperand?: 'F32' | 'BF16';
}

export interface NativeGraph {
  readonly arenaBytes: number;
  readonly nodeCount: number;
  run(inputs: NativeTensor[], opts?: { profile?: boolean; repeat?: number }): Promise<NativeTensor[] & { profile?: { op: string; backend: string; algorithm: string; seconds: number; flops: number }[] }>;
  /** per node: the backend that runs it and its choice of algorithm */
  placements(): { op: string; backend: string; algorithm: string; fallback: boolean; reason?: string; storage?: string }[];
  dispose(): void;
}

export interface NativeAddon {
  mapFile(path: string): NativeMappedFile;
  tensorFromFloat32(dtype: NativeDType, shape: number[], values: Float32Array): NativeTensor;
  tensorFromBytes(dtype: NativeDType, shape: number[], bytes: ArrayBufferView): NativeTensor;
  /** Uniform values with that mean and standard deviation, deterministic in the seed. */
  randomTensor(dtype: NativeDType, shape: number[], seed: number, mean: number, std: number): NativeTensor;
  cpuInfo(): { threads: number; simd: string[] };
  cudaStatus(libraryPath: string): NativeCudaStatus;
  /** free and total bytes of the GPU now (throws without a usable CUDA backend) */
  cudaMemory(): { free: number; total: number };
  cudaAbi: number;
  /** reads the spec at once (malformed objects throw); validates, plans and prepares weights off the JS thread */
  createGraph(spec: NativeGraphSpec, device?: 'cpu' | 'cuda'): Promise<NativeGraph>;
  /** every op's definition (native/graph/op_defs.h); lib/graph/op_schema.ts is generated from it */
  opSchema(): { ops: { name: string; inputs: { name: string; required: boolean }[]; attrs: { name: string; kind: string; default: number | null; min?: number; max?: number }[] }[]; acts: string[] };
  /** the graph's rules for one node: its output shape and multiply-adds [conv, linear, attention QK, attention PV] (throws ERR_ONESTEP_GRAPH) */
  inferNode(op: number, inputs: ({ dtype: string; shape: readonly number[] } | null)[], attrs: number[]): { shape: number[]; macs: number[]; bytes: number };
  /** when the CPU plan runs conv2d by Winograd (native/cpu/cpu_backend.h) */
  setWinogradPolicy(policy: 'auto' | 'always' | 'f4x4' | 'never'): void;
  winogradPolicy(): 'auto' | 'always' | 'f4x4' | 'never';
  /** base + sum(factor * up @ down), computed in float32 and rounded once to base's dtype */
  fuseLora(base: NativeTensor, parts: { down: NativeTensor; up: NativeTensor; factor: number }[], name: string, dtype?: NativeDType, into?: NativeTensor): NativeTensor;
  /**
   * The same fusion, recorded on the tensor and made where it is read (native/cpu/lora.h): on the
   * GPU when a graph uploads it (and again in place when `into`'s definition is replaced), on the
   * host at its first host read. hostWasRead: `into`'s host bytes had been made (graphs reading it
   * on the CPU must be rebuilt).
   */
  deferLoraFusion(
    base: NativeTensor,
    parts: { down: NativeTensor; up: NativeTensor; factor: number }[],
    name: string,
    dtype?: NativeDType,
    into?: NativeTensor,
  ): { tensor: NativeTensor; hostWasRead: boolean };
  /**
   * kernel: the float32 micro-kernel; bf16Kernel: the bf16 one, null where the CPU has none;
   * bf16DepthBlock: the depth of a bf16 panel block (also attention's key block at precision bf16);
   * narrow: the kernel has a narrow variant (conv2d to at most 8 channels from 16 or more: 'narrow_gemm');
   * vectorMath, winograd: the versions of the vector math and of the Winograd tile transforms in use
   * ('avx512', 'avx2', or the portable 'scalar' / 'generic')
   */
  gemmInfo(): { kernel: string; bf16Kernel: string | null; bf16DepthBlock: number; narrow: boolean; vectorMath: string; winograd: string };
  gemmSelect(kernel: string): boolean;
  /** forces a bf16 kernel ('amx_bf16', 'avx512_bf16', 'generic'; 'none': as without bf16; 'auto': the default); false where it cannot run */
  gemmSelectBf16(kernel: string): boolean;
  /** GFLOP/s of C = A B^T ([M x K] x [N x K]): 'packed' packs B per call (default), 'prepacked' and 'bf16' as a graph's plan does */
  gemmBench(M: number, N: number, K: number, dtype: NativeDType, seconds: number, schedule?: 'packed' | 'prepacked' | 'bf16'): number;
  /** The float32 GEMM kernel's FMA ceiling in GFLOP/s: register-only FMAs on every pool thread for `seconds`. */
  gemmPeak(seconds: number): number;
}

const packageRoot = path.resolve(__dirname, '..');
let loaded: { addon: NativeAddon; file: string } | undefined;

function load(): { addon: NativeAddon; file: string } {
  if (loaded) return loaded;
  let file: string;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    file = require('node-gyp-build').resolve(packageRoot) as string;
  } catch (e) {
    throw new AddonLoadError(
      `the onestep native addon is not built for ${process.platform}-${process.arch} (node ${process.versions.node}) and no prebuilt one matches. ` +
        `It is built at install by onestep's install script (cmake or python3 + make, and a C++ compiler): allow that script ` +
        `(npm: "allowScripts": { "onestep": true } in your package.json, or npm approve-scripts onestep) and run "npm rebuild onestep"; ` +
        `in a clone of the repository run "npm run build:native" in ${packageRoot}`,
      e,
    );
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    loaded = { addon: require(file) as NativeAddon, file };
  } catch (e) {
    throw new AddonLoadError(`the onestep native addon at ${file} failed to load: ${(e as Error).message}`, e);
  }
  return loaded;
}

export function addon(): NativeAddon {
  return load().addon;
}

/** Path of the loaded addon binary. */
export function addonPath(): string {
  return load().file;
}

/** Where the CUDA backend library is expected: next to the addon binary. */
export function cudaLibraryPath(): string {
  const name =
    process.platform === 'win32' ? 'onestep_cuda.dll' : process.platform === 'darwin' ? 'libonestep_cuda.dylib' : 'libonestep_cuda.so';
  return path.join(path.dirname(addonPath()), name);
}

export function cudaLibraryPresent(): boolean {
  return fs.existsSync(cudaLibraryPath());
}

/** Calls into native code, re-throwing its errors as typed NativeErrors. */
export function callNative<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}
