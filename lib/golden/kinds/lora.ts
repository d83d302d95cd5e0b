// lora goldens: a LoRA file (in each key style it is published in) fused into tiny-sd15 /
// tiny-sdxl at a scale; the fused UNet output, text-encoder outputs and a few fused weights are
// compared. The base outputs are checked first, and again after unfusing (bitwise restore).
import * as path from 'path';
import type { CLIPTextModel, TextEncoderOutput } from '../../models/clip/text_encoder';
import type { UNet2DConditionModel } from '../../models/unet/unet';
import { type LoraComponent, LoraSet, type LoraSpec } from '../../lora';
import type { SafetensorsFile } from '../../safetensors';
import type { Comparison } from '../compare';
import { loadTextEncoder, loadUNet } from '../models';
import type { CaseRunner } from './network';

/** Which files carry each SD1.5 golden's LoRA (the README lists them; SDXL goldens name them in case.lora_files). */
const SD15: Record<string, string[][]> = {
  diffusers: [['sd15_lora_diffusers'], ['sd15_lora_peft'], ['sd15_lora_diffusers_old']],
  kohya_full: [['sd15_lora_kohya_full']],
  kohya_te: [['sd15_lora_kohya_te']],
};

function loraSets(golden: SafetensorsFile, meta: Record<string, unknown>, root: string): { label: string; specs: LoraSpec[] }[] {
  const name = path.basename(golden.path, '.safetensors');
  const scale = (meta.scale as number | undefined) ?? 1;
  const lora = (f: string) => path.join(root, 'lora', f.endsWith('.safetensors') ? path.basename(f) : `${f}.safetensors`);
  if (Array.isArray(meta.lora_files)) return (meta.lora_files as string[]).map((f) => ({ label: path.basename(f, '.safetensors'), specs: [{ path: lora(f), scale }] }));
  if (name === 'lora_sd15_combo') {
    return [{ label: 'kohya_full x1 + kohya_te x0.8', specs: [{ path: lora('sd15_lora_kohya_full'), scale: 1 }, { path: lora('sd15_lora_kohya_te'), scale: 0.8 }] }];
  }
  const m = /^lora_sd15_(.+)_s[\d.]+$/.exec(name);
  const files = m ? SD15[m[1]] : undefined;
  if (!files) throw new Error(`no LoRA files known for golden ${name}`);
  return files.map((fs) => ({ label: fs[0], specs: fs.map((f) => ({ path: lora(f), scale })) }));
}

async function outputs(golden: SafetensorsFile, unet: UNet2DConditionModel, encoders: Partial<Record<LoraComponent, CLIPTextModel>>, suffix: string, cmp: Comparison, label: string) {
  const has = (k: string) => golden.has(k);
  if (has(`unet_out${suffix}`)) {
    const [B, , H, W] = golden.info('sample').shape;
    const t = golden.float32('timestep');
    const out = await unet.forward(
      {
        sample: golden.float32('sample'),
        timestep: t.length === B ? t : new Float32Array(B).fill(t[0]),
        encoderHiddenStates: golden.float32('encoder_hidden_states'),
        textEmbeds: has('text_embeds') ? golden.float32('text_embeds') : undefined,
        timeIds: has('time_ids') ? golden.float32('time_ids') : undefined,
      },
      { batch: B, height: H, width: W, contextLength: golden.info('encoder_hidden_states').shape[1] },
    );
    cmp.add(`${label}unet_out${suffix}`, out.toFloat32(), golden.float32(`unet_out${suffix}`));
    out.dispose();
  }
  for (const [prefix, comp, ids] of [['te', 'text_encoder', 'input_ids'], ['te2', 'text_encoder_2', 'input_ids_2']] as const) {
    const enc = encoders[comp];
    if (!enc) continue;
    const wanted: [string, TextEncoderOutput][] = (
      [
        [`${prefix}_last_hidden_state${suffix}`, 'last_hidden_state'],
        [`${prefix}_penultimate_hidden_state${suffix}`, 'penultimate'],
        [`${prefix}_text_embeds${suffix}`, 'text_embeds'],
      ] as [string, TextEncoderOutput][]
    ).filter(([k]) => has(k));
    if (!wanted.length) continue;
    const shape = golden.info(ids).shape;
    const flat = golden.float32(ids);
    const rows = Array.from({ length: shape[0] }, (_, b) => Array.from(flat.subarray(b * shape[1], (b + 1) * shape[1])));
    const r = await enc.encode(rows, wanted.map(([, o]) => o));
    for (const [k, o] of wanted) {
      cmp.add(`${label}${k}`, r[o].toFloat32(), golden.float32(k));
      r[o].dispose();
    }
  }
}

export const loraCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  for (const { label, specs } of loraSets(golden, meta, ctx.root)) {
    const unet = loadUNet(modelDir, ctx);
    const encoders: Partial<Record<LoraComponent, CLIPTextModel>> = {};
    const needs = (p: string) => golden.names().some((n) => n.startsWith(p));
    if (needs('te_')) encoders.text_encoder = loadTextEncoder(modelDir, ctx, 'text_encoder');
    if (needs('te2_')) encoders.text_encoder_2 = loadTextEncoder(modelDir, ctx, 'text_encoder_2');
    const comps: Partial<Record<LoraComponent, import('../../models/weights').Weights>> = { unet: unet.weights };
    for (const [c, e] of Object.entries(encoders)) comps[c as LoraComponent] = (e as CLIPTextModel).weights;
    const lpb = unet.config.layersPerBlock;
    const set = new LoraSet(comps, lpb[0]);
    const tag = `[${label}] `;
    try {
      await outputs(golden, unet, encoders, '_base', cmp, tag);
      set.add(specs, { strict: true });
      const { changed } = set.apply();
      unet.resetGraphs();
      for (const c of changed) if (c !== 'unet') encoders[c]?.resetGraphs();
      await outputs(golden, unet, encoders, '', cmp, tag);
      for (const name of golden.names()) {
        const m = /^fused\.(unet|text_encoder_2|text_encoder)\.(.+)$/.exec(name);
        if (!m) continue;
        const t = set.fusedWeight(m[1] as LoraComponent, m[2]);
        if (!t) throw new Error(`${tag}${m[1]}.${m[2]} was not fused`);
        cmp.add(`${tag}${name}`, t.toFloat32(), golden.float32(name));
      }
      // unfusing restores the checkpoint's weights: the base outputs again
      set.remove();
      const back = set.apply();
      unet.resetGraphs();
      for (const c of back.changed) if (c !== 'unet') encoders[c]?.resetGraphs();
      await outputs(golden, unet, encoders, '_base', cmp, `${tag}unfused `);
    } finally {
      set.dispose();
      unet.dispose();
      for (const e of Object.values(encoders)) e?.dispose();
    }
  }
};
