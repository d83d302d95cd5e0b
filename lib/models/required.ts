// The weights a model with a given config reads (a dry run with recording weights), and how a
// tensor source falls short of them: a load-time check, so a checkpoint missing a weight fails
// with the list instead of at the first generation.
import type { TensorSource } from '../safetensors';
import { Weights } from './weights';

export function requiredWeights(make: (w: Weights) => { buildGraphs(): void }): Map<string, number[]> {
  const w = Weights.recording('required');
  make(w).buildGraphs();
  return w.recordedShapes();
}

/** One line per weight the source lacks or holds with another shape (none: complete). */
export function missingWeights(source: TensorSource, required: Map<string, number[]>): string[] {
  const out: string[] = [];
  for (const [key, shape] of required) {
    if (!source.has(key)) {
      out.push(`missing '${key}' [${shape.join(', ')}]`);
      continue;
    }
    const got = source.info(key).shape;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) out.push(`'${key}' is [${got.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return out;
}
