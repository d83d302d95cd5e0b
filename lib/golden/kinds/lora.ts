// lora goldens: a LoRA file (in each key style it is published in) fused into tiny-sd15 /
// tiny-sdxl at a scale; the fused UNet output, text-encoder outputs and a few fused weights are
// compared. The base outputs are checked first, and again after unfusing (bitwise restore).
import * as fs from 'fs';
import * as path from 'path';
import type { CLIPTextModel, TextEncoderOutput } from '../../models/clip/text_encoder';
import type { UNet2DConditionModel } from '../../models/unet/unet';
import { type LoraComponent, LoraSet, type LoraSpec } from '../../lora';
import type { SafetensorsFile } from '../../safetensors';
import type { LoraReport } from '../../lora';
import type { Comparison } from '../compare';
import { loadTextEncoder, loadUNet } from '../models';
import { CaseFieldError, checkFields, fieldNumber, isObject } from '../fields';
import type { CaseRunner } from './network';

export const LORA_FIELDS = ['call', 'scale', 'lora_files', 'adapters', 'timestep_passed_as', 'fused_unet_modules', 'fused_text_encoder_modules', 'fused_text_encoder_2_modules'];

/** A LoRA file a case names, relative to the fixture root. */
export function fixtureLora(root: string, file: unknown, what: string): string {
  if (typeof file !== 'string' || file === '' || path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) throw new CaseFieldError(`${what}: a LoRA file must be a path relative to the fixture root, got ${JSON.stringify(file)}`);
  const p = path.join(root, file);
  if (!fs.existsSync(p)) throw new CaseFieldError(`${what}: LoRA file ${file} not found under ${root}`);
  return p;
}

/**
 * The LoRA sets a case fuses, from its metadata: `lora_files` are alternatives (the same LoRA in
 * several key styles), each fused alone at `scale`; `adapters` ([{file, weight}]) are fused
 * together, each at scale * weight.
 */
function loraSets(meta: Record<string, unknown>, root: string): { label: string; specs: LoraSpec[] }[] {
  const scale = fieldNumber(meta, 'scale', 'case field');
  const files = meta.lora_files;
  const adapters = meta.adapters;
  if ((files === undefined) === (adapters === undefined)) throw new CaseFieldError('a lora case names its LoRA in exactly one of lora_files (alternatives) and adapters (a combination)');
  if (files !== undefined) {
    if (!Array.isArray(files) || files.length === 0) throw new CaseFieldError(`case field 'lora_files' must be a non-empty list of files, got ${JSON.stringify(files)}`);
    return files.map((f) => ({ label: path.basename(String(f), '.safetensors'), specs: [{ path: fixtureLora(root, f, 'lora_files'), scale }] }));
  }
  if (!Array.isArray(adapters) || adapters.length === 0) throw new CaseFieldError(`case field 'adapters' must be a non-empty list of {file, weight}, got ${JSON.stringify(adapters)}`);
  const specs = adapters.map((x, i) => {
    if (!isObject(x)) throw new CaseFieldError(`adapters[${i}] must be {file, weight}`);
    checkFields(x, ['file', 'weight'], `adapters[${i}] field`, []);
    const weight = fieldNumber(x, 'weight', `adapters[${i}]`);
    return { path: fixtureLora(root, x.file, `adapters[${i}]`), scale: scale * weight, label: `${path.basename(String(x.file), '.safetensors')} x${weight}` };
  });
  return [{ label: specs.map((s) => s.label).join(' + '), specs: specs.map(({ path: p, scale: s }) => ({ path: p, scale: s })) }];
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
    cmp.add(`${label}unet_out${suffix}`, out.toFloat32(), golden.float32(`unet_out${suffix}`), `unet_out${suffix}`);
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
      cmp.add(`${label}${k}`, r[o].toFloat32(), golden.float32(k), k);
      r[o].dispose();
    }
  }
}

export const loraCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  for (const { label, specs } of loraSets(meta, ctx.root)) {
    const unet = loadUNet(modelDir, ctx);
    const encoders: Partial<Record<LoraComponent, CLIPTextModel>> = {};
    // an encoder is loaded when the case compares its outputs or says the LoRA fuses into it
    const needs = (p: string, c: LoraComponent) => golden.names().some((n) => n.startsWith(p)) || Number(meta[`fused_${c}_modules`] ?? 0) > 0;
    if (needs('te_', 'text_encoder')) encoders.text_encoder = loadTextEncoder(modelDir, ctx, 'text_encoder');
    if (needs('te2_', 'text_encoder_2')) encoders.text_encoder_2 = loadTextEncoder(modelDir, ctx, 'text_encoder_2');
    const comps: Partial<Record<LoraComponent, import('../../models/weights').Weights>> = { unet: unet.weights };
    for (const [c, e] of Object.entries(encoders)) comps[c as LoraComponent] = (e as CLIPTextModel).weights;
    const lpb = unet.config.layersPerBlock;
    const set = new LoraSet(comps, lpb[0]);
    const tag = `[${label}] `;
    try {
      await outputs(golden, unet, encoders, '_base', cmp, tag);
      set.add(specs, { strict: true });
      const { changed, report } = set.apply();
      checkFusedCounts(meta, report, tag);
      unet.resetGraphs();
      for (const c of changed) if (c !== 'unet') encoders[c]?.resetGraphs();
      await outputs(golden, unet, encoders, '', cmp, tag);
      for (const name of golden.names()) {
        const m = /^fused\.(unet|text_encoder_2|text_encoder)\.(.+)$/.exec(name);
        if (!m) continue;
        const t = set.fusedWeight(m[1] as LoraComponent, m[2]);
        if (!t) throw new Error(`${tag}${m[1]}.${m[2]} was not fused`);
        cmp.add(`${tag}${name}`, t.toFloat32(), golden.float32(name), name);
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

/** The case's fused_<component>_modules counts against the weights the fusion changed. */
function checkFusedCounts(meta: Record<string, unknown>, report: LoraReport, tag: string): void {
  for (const c of ['unet', 'text_encoder', 'text_encoder_2'] as const) {
    const key = `fused_${c}_modules`;
    if (meta[key] === undefined) continue;
    const want = fieldNumber(meta, key, 'case field');
    const got = report.fused[c] ?? 0;
    if (got !== want) throw new Error(`${tag}${got} ${c} weights fused, the case says ${want} (${key})`);
  }
}
