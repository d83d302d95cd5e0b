// One denoising step as one graph: input scaling, guidance batching, the ControlNets active at the
// step (their residuals summed into the UNet), the UNet, and the fused scheduler step. Built once
// per shape and set of active ControlNets; a ControlNet outside its window is not in the graph.
import type { CompiledGraph, GraphBuilder, Value } from '../graph';
import { describeYielding, yieldToLoop } from '../graph/describe';
import type { ControlNetModel } from '../models/controlnet/controlnet';
import type { UNetExtras } from '../models/unet/encoder';
import type { UNet2DConditionModel, UNetResiduals } from '../models/unet/unet';

export interface StepGraphKey {
  /** UNet batch rows: batch, or 2 x batch under guidance */
  rows: number;
  batch: number;
  h: number;
  w: number;
  cfg: boolean;
  /** also output the intermediates the goldens record */
  trace: boolean;
  /** text context length (77) */
  length: number;
  /** the ControlNets at this step, in call order (their slots in the pipeline's list) */
  controls: number[];
  /** guess mode: under guidance the ControlNets see the conditional half only */
  guess: boolean;
}

/** Concatenates along the batch axis (the first): [a; b], as torch.cat(dim=0). */
function batchConcat(g: GraphBuilder, a: Value, b: Value): Value {
  const na = a.shape.reduce((p, q) => p * q, 1);
  const nb = b.shape.reduce((p, q) => p * q, 1);
  const flat = g.concat(g.reshape(a, [1, na]), g.reshape(b, [1, nb]));
  return g.reshape(flat, [a.shape[0] + b.shape[0], ...a.shape.slice(1)]);
}

/** The conditional half of a [2B, ...] batch (torch's chunk(2)[1]). */
const condHalf = (g: GraphBuilder, x: Value, batch: number): Value => g.slice(x, 0, batch, batch);


export async function buildStepGraph(unet: UNet2DConditionModel, controlNets: readonly ControlNetModel[], key: StepGraphKey): Promise<CompiledGraph> {
  const c = unet.config;
  const g = unet.weights.builder(); // on the UNet's device
  const C = c.inChannels;
  const shape = [key.batch, C, key.h, key.w];
  const latents = g.input('latents', shape);
  const inScale = g.input('in_scale', [1]);
  const t = g.input('timestep', [key.rows]);
  const context = g.input('context', [key.rows, key.length, c.crossAttentionDim]);
  const coeffs = g.input('coeffs', [8]);
  const noise = g.input('noise', shape);
  const extras: UNetExtras = {};
  if (c.timeCondProjDim) {
    const w = g.input('guidance_w', [key.rows]);
    extras.timestepCond = g.timestepEmbedding(g.affine(w, 1000), c.timeCondProjDim, false, 1, 1, 'guidance');
    if (key.trace) g.output('timestep_cond', extras.timestepCond);
  }
  if (c.textTime) {
    extras.textEmbeds = g.input('text_embeds', [key.rows, unet.textEmbedsDim]);
    extras.timeIds = g.input('time_ids', [key.rows, 6]);
  }
  const scaled = g.mul(latents, inScale);
  const x: Value = key.cfg ? batchConcat(g, scaled, scaled) : scaled;

  // ControlNets: on the UNet's input, or (guess mode under guidance) on the conditional half only
  let residuals: UNetResiduals | undefined;
  if (key.controls.length) {
    const half = key.guess && key.cfg;
    const cnX = half ? scaled : x;
    const cnT = half ? condHalf(g, t, key.batch) : t;
    const cnContext = half ? condHalf(g, context, key.batch) : context;
    const cnExtras: UNetExtras = {};
    if (extras.textEmbeds && extras.timeIds) {
      cnExtras.textEmbeds = half ? condHalf(g, extras.textEmbeds, key.batch) : extras.textEmbeds;
      cnExtras.timeIds = half ? condHalf(g, extras.timeIds, key.batch) : extras.timeIds;
    }
    const cnRows = cnX.shape[0];
    if (key.trace) g.output('controlnet_sample', cnX);
    for (const [k, slot] of key.controls.entries()) {
      await yieldToLoop();
      const cn = controlNets[slot];
      const cond = g.input(`control${k}_cond`, [cnRows, cn.config.conditioningChannels, 8 * key.h, 8 * key.w]);
      const scales = g.input(`control${k}_scales`, [cn.numResiduals]);
      const r = cn.describe(g, cnX, cnT, cnContext, cond, scales, cnExtras);
      if (key.trace) {
        r.down.forEach((d, j) => g.output(`control${k}_down_${j}`, g.toNCHW(d)));
        g.output(`control${k}_mid`, g.toNCHW(r.mid));
      }
      // guess mode under guidance: the unconditional half gets no residual (torch.cat([zeros, r]))
      const pad = (v: Value) => (half ? batchConcat(g, g.affine(v, 0), v) : v);
      const mine = { down: r.down.map(pad), mid: pad(r.mid) };
      // MultiControlNet: the residuals summed, in order
      const sum: UNetResiduals | undefined = residuals;
      residuals = sum ? { down: sum.down.map((d, j) => g.add(d, mine.down[j])), mid: g.add(sum.mid, mine.mid) } : mine;
    }
  }
  await yieldToLoop();
  const out = await describeYielding(unet.describeParts(g, x, t, context, extras, residuals));
  g.output('prev', g.schedulerStep(latents, out, coeffs, noise, 'prev'));
  g.output('denoised', g.schedulerStep(latents, out, coeffs, noise, 'denoised'));
  if (key.trace) {
    g.output('unet_sample', x);
    g.output('unet_out', out);
  }
  await yieldToLoop();
  return g.build();
}
