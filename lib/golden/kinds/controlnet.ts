// controlnet goldens (controlnet/): a ControlNetModel's residuals for given sample, timestep,
// conditioning and control image, and the base model's UNet output with them injected (and
// without). Everything from the case: which ControlNet, the conditioning scale, guess mode.
import * as path from 'path';
import type { UNetExtras } from '../../models/unet/encoder';
import { ControlNetModel, residualScales } from '../../models/controlnet/controlnet';
import { CaseFieldError, checkFields, fieldNumber, isObject } from '../fields';
import { loadUNet } from '../models';
import type { ModelTarget } from '../../models/weights';
import type { CaseRunner } from './network';

export const CONTROLNET_FIELDS = ['call', 'component', 'controlnet', 'num_down_block_res_samples', 'timestep_passed_as', 'timestep_values'];

/** A ControlNet folder a case names (under models/). */
export function fixtureControlNet(root: string, name: unknown, target: ModelTarget): ControlNetModel {
  if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) throw new CaseFieldError(`case field 'controlnet' must name a folder under models/, got ${JSON.stringify(name)}`);
  return ControlNetModel.fromPretrained(path.join(root, 'models', name), target);
}

export const controlnetCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  const call = meta.call;
  if (!isObject(call)) throw new CaseFieldError("case field 'call' must be the ControlNet call's arguments");
  checkFields(call, ['conditioning_scale', 'guess_mode', 'timestep', 'controlnet_conditioning_channel_order'], 'call field', []);
  const scale = fieldNumber(call, 'conditioning_scale', 'call field');
  const guess = call.guess_mode ?? false;
  if (typeof guess !== 'boolean') throw new CaseFieldError("call field 'guess_mode' must be true or false");
  if (golden.has('conditioning_scale') && golden.float32('conditioning_scale')[0] !== Math.fround(scale)) throw new CaseFieldError('call.conditioning_scale differs from the conditioning_scale tensor');
  const t = golden.float32('timestep');
  for (const k of ['timestep', 'timestep_values'] as const) {
    const v = k === 'timestep' ? call.timestep : meta.timestep_values;
    if (v === undefined) continue;
    const list = Array.isArray(v) ? v : [v];
    if (list.length !== t.length || list.some((x, i) => Math.fround(Number(x)) !== t[i])) throw new CaseFieldError(`${k} ${JSON.stringify(v)} differs from the timestep tensor`);
  }
  const cn = fixtureControlNet(ctx.root, meta.controlnet, ctx);
  const unet = loadUNet(modelDir, ctx);
  try {
    if (call.controlnet_conditioning_channel_order !== undefined && call.controlnet_conditioning_channel_order !== cn.config.channelOrder) {
      throw new CaseFieldError(`call.controlnet_conditioning_channel_order ${JSON.stringify(call.controlnet_conditioning_channel_order)} differs from the ControlNet config's ${cn.config.channelOrder}`);
    }
    if (meta.num_down_block_res_samples !== undefined && meta.num_down_block_res_samples !== cn.numResiduals - 1) {
      throw new CaseFieldError(`num_down_block_res_samples ${meta.num_down_block_res_samples}: the ControlNet gives ${cn.numResiduals - 1}`);
    }
    const [B, , H, W] = golden.info('sample').shape;
    const L = golden.info('encoder_hidden_states').shape[1];
    const timestep = t.length === B ? t : new Float32Array(B).fill(t[0]);
    const has = (k: string) => golden.has(k);
    // one graph, as the pipelines build it: the ControlNet's residuals into the UNet
    const g = unet.weights.builder();
    const c = unet.config;
    const sample = g.input('sample', [B, c.inChannels, H, W]);
    const tv = g.input('timestep', [B]);
    const context = g.input('encoder_hidden_states', [B, L, c.crossAttentionDim]);
    const cond = g.input('controlnet_cond', golden.info('controlnet_cond').shape);
    const scales = g.input('scales', [cn.numResiduals]);
    const extras: UNetExtras = {};
    if (c.textTime) {
      extras.textEmbeds = g.input('text_embeds', golden.info('text_embeds').shape);
      extras.timeIds = g.input('time_ids', golden.info('time_ids').shape);
    }
    const r = cn.describe(g, sample, tv, context, cond, scales, extras);
    r.down.forEach((d, i) => g.output(`down_${i}`, g.toNCHW(d)));
    g.output('mid', g.toNCHW(r.mid));
    g.output('unet_out', unet.describe(g, sample, tv, context, extras, r));
    const graph = g.build();
    try {
      const feed: Record<string, Float32Array> = {
        sample: golden.float32('sample'),
        timestep,
        encoder_hidden_states: golden.float32('encoder_hidden_states'),
        controlnet_cond: golden.float32('controlnet_cond'),
        scales: residualScales(cn.numResiduals, scale, guess),
      };
      if (c.textTime) {
        feed.text_embeds = golden.float32('text_embeds');
        feed.time_ids = golden.float32('time_ids');
      }
      const out = await graph.run(feed);
      for (let i = 0; has(`down_block_res_samples_${i}`) || i < r.down.length; i++) {
        const k = `down_block_res_samples_${i}`;
        if (!out[`down_${i}`] || !has(k)) throw new Error(`residual ${i}: ${out[`down_${i}`] ? 'not in the golden' : 'the ControlNet gives none'}`);
        cmp.add(k, out[`down_${i}`].toFloat32(), golden.float32(k));
      }
      cmp.add('mid_block_res_sample', out.mid.toFloat32(), golden.float32('mid_block_res_sample'));
      cmp.add('unet_out', out.unet_out.toFloat32(), golden.float32('unet_out'));
      for (const v of Object.values(out)) if (v && typeof (v as { dispose?: unknown }).dispose === 'function') (v as { dispose(): void }).dispose();
    } finally {
      graph.dispose();
    }
    if (has('unet_out_without_control')) {
      const plain = await unet.forward(
        { sample: golden.float32('sample'), timestep, encoderHiddenStates: golden.float32('encoder_hidden_states'), textEmbeds: has('text_embeds') ? golden.float32('text_embeds') : undefined, timeIds: has('time_ids') ? golden.float32('time_ids') : undefined },
        { batch: B, height: H, width: W, contextLength: L },
      );
      cmp.add('unet_out_without_control', plain.toFloat32(), golden.float32('unet_out_without_control'));
      plain.dispose();
    }
    const unused = cn.unusedWeights();
    if (unused.length) throw new Error(`ControlNet weights not used: ${unused.slice(0, 5).join(', ')}`);
  } finally {
    cn.dispose();
    unet.dispose();
  }
};
