// Applying a step's coefficients with the fused native step op, outside a model graph (the
// scheduler goldens; the pipelines build the same op into their step graphs).
import { type CompiledGraph, GraphBuilder } from '../graph';
import type { NativeTensor } from '../native';
import type { StepCoefficients } from './types';

/** The 8 floats the scheduler_step op reads: a1 b1 a2 b2 g2 nu cfgUncond cfgCond. */
export function coeffVector(c: StepCoefficients, guidance?: number): Float32Array {
  const g = guidance ?? 1;
  return Float32Array.from([c.a1, c.b1, c.a2, c.b2, c.g2, c.nu, 1 - g, g]);
}

const graphs = new Map<string, CompiledGraph>();

export async function applyStep(
  shape: number[],
  x: Float32Array | NativeTensor,
  modelOutput: Float32Array | NativeTensor,
  coeffs: StepCoefficients,
  noise?: Float32Array | NativeTensor,
): Promise<{ prev: Float32Array; denoised: Float32Array }> {
  const key = `${shape.join('x')}:${noise ? 'n' : ''}`;
  let graph = graphs.get(key);
  if (!graph) {
    const g = new GraphBuilder();
    const xv = g.input('x', shape);
    const ov = g.input('out', shape);
    const cv = g.input('coeffs', [8]);
    const nv = noise ? g.input('noise', shape) : undefined;
    g.output('prev', g.schedulerStep(xv, ov, cv, nv, 'prev'));
    g.output('denoised', g.schedulerStep(xv, ov, cv, nv, 'denoised'));
    graph = g.build();
    graphs.set(key, graph);
  }
  const inputs: Record<string, Float32Array | NativeTensor> = { x, out: modelOutput, coeffs: coeffVector(coeffs) };
  if (noise) inputs.noise = noise;
  const r = await graph.run(inputs);
  const out = { prev: r.prev.toFloat32(), denoised: r.denoised.toFloat32() };
  r.prev.dispose();
  r.denoised.dispose();
  return out;
}
