// A single-file checkpoint seen under diffusers names: a TensorSource over the mapped file where
// each name resolves to a key of the file, a row range of it, a reshape (all zero-copy views) or a
// transpose (a copy, only SDXL's small text projection).
import { SafetensorsError } from '../errors';
import { type NativeDType, type NativeTensor, addon, callNative } from '../native';
import type { SafetensorsFile, TensorMeta, TensorSource } from '../safetensors';
import type { Target } from './types';

export class RenamedSource implements TensorSource {
  constructor(
    private readonly file: SafetensorsFile,
    private readonly targets: ReadonlyMap<string, Target>,
    /** e.g. 'model.safetensors (unet)' */
    readonly source: string,
  ) {}

  names(): string[] {
    return [...this.targets.keys()];
  }

  has(name: string): boolean {
    return this.targets.has(name);
  }

  private target(name: string): Target {
    const t = this.targets.get(name);
    if (!t) throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_MISSING', this.source, 'no such tensor', name);
    return t;
  }

  info(name: string): TensorMeta {
    const t = this.target(name);
    const i = this.file.info(t.key);
    if (t.transpose) return { dtype: i.dtype, shape: [...i.shape].reverse() };
    if (t.shape) return { dtype: i.dtype, shape: [...t.shape] };
    if (t.rows) return { dtype: i.dtype, shape: [t.rows[1] - t.rows[0], ...i.shape.slice(1)] };
    return { dtype: i.dtype, shape: [...i.shape] };
  }

  tensor(name: string): NativeTensor {
    const t = this.target(name);
    if (!t.transpose) return this.file.view(t.key, { rows: t.rows, shape: t.shape });
    const i = this.file.info(t.key);
    if (i.shape.length !== 2) throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_SHAPE', this.file.path, `expected a 2-D tensor to transpose, got [${i.shape.join(', ')}]`, t.key);
    const [r, c] = i.shape;
    const v = this.file.float32(t.key);
    const out = new Float32Array(r * c);
    for (let a = 0; a < r; a++) for (let b = 0; b < c; b++) out[b * r + a] = v[a * c + b];
    // float32 holds every F16 / BF16 value exactly, so converting back restores the stored values
    return callNative(() => addon().tensorFromFloat32(i.dtype as NativeDType, [c, r], out));
  }

  close(): void {
    this.file.close();
  }
}
