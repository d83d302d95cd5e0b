// Where a pipeline's random draws come from: a torch-compatible CPU generator (so a seed gives
// diffusers' latents), or, for the goldens, tensors recorded from the reference run.
import { ArgumentError } from '../errors';
import { type NormalVariant, type Seed, TorchGenerator } from '../rng';

export interface NoiseSource {
  /** randn(shape) in diffusers' order; `label` names the draw (for recorded sources). */
  randn(shape: number[], label: string): Float32Array;
}

export class TorchNoise implements NoiseSource {
  private readonly gen: TorchGenerator;
  constructor(seed: Seed, variant?: NormalVariant) {
    this.gen = new TorchGenerator(seed, variant ? { variant } : {});
  }
  randn(shape: number[]): Float32Array {
    return this.gen.randn(shape);
  }
}

/** Hands out recorded tensors in order, checking each draw's size. */
export class RecordedNoise implements NoiseSource {
  private next = 0;
  constructor(private readonly draws: { label: string; data: Float32Array }[]) {}
  randn(shape: number[], label: string): Float32Array {
    const d = this.draws[this.next++];
    const n = shape.reduce((a, b) => a * b, 1);
    if (!d) throw new ArgumentError(`recorded noise exhausted at draw ${this.next} (${label})`);
    if (d.data.length !== n) throw new ArgumentError(`recorded draw ${this.next} (${d.label}) has ${d.data.length} values; the pipeline asked for ${label} [${shape}]`);
    return d.data;
  }
  get remaining(): number {
    return this.draws.length - this.next;
  }
}
