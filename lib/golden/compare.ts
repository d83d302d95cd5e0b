// Comparing engine outputs with golden tensors.

/** ||a - b|| / ||b|| (0 when both are zero). */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (!Number.isFinite(num)) return Infinity;
  return den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
}

/** NHWC [B, H, W, C] -> NCHW [B, C, H, W] (for comparing engine activations with goldens). */
export function nhwcToNchw(x: Float32Array, shape: readonly number[]): Float32Array {
  const [B, H, W, C] = shape;
  const out = new Float32Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++)
        for (let c = 0; c < C; c++) out[((b * C + c) * H + h) * W + w] = x[((b * H + h) * W + w) * C + c];
  return out;
}

/** The worst of several named comparisons, for one golden line. */
export class Comparison {
  readonly items: { name: string; value: number }[] = [];
  /** the golden tensors compared (by their key in the file) */
  readonly keys = new Set<string>();
  /** The engine computed the case with bf16 GEMM operands (a force_upcast VAE on CUDA): it is held to
   * the bf16 tolerance, like precision 'bf16' on the CPU (network.ts). */
  bf16Operands = false;

  /** `key`: the golden tensor compared, when `name` (the line's label) is not that key. */
  add(name: string, got: ArrayLike<number>, want: ArrayLike<number>, key = name): void {
    this.items.push({ name, value: relL2(got, want) });
    this.keys.add(key);
  }

  get worst(): { name: string; value: number } {
    return this.items.reduce((a, b) => (b.value > a.value || Number.isNaN(b.value) ? b : a), { name: '-', value: 0 });
  }

  describe(): string {
    return this.items.map((i) => `${i.name}=${i.value.toExponential(2)}`).join(' ');
  }
}
