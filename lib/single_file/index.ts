// Single-file checkpoints: detect the family from the safetensors header alone, derive each
// component's config from shapes, and present each component under diffusers names. What the
// weights cannot tell comes from the family's defaults or from a diffusers folder (`configDir`).
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, FileNotFoundError } from '../errors';
import { type Json, readJsonFile } from '../models/config';
import { SafetensorsFile, type TensorMeta, type TensorSource } from '../safetensors';
import { readSchedulerConfig } from '../schedulers';
import type { SchedulerConfig } from '../schedulers/common';
import { FAMILIES } from './families';
import { RenamedSource } from './source';
import type { ComponentName, FamilyPlan, HeaderIndex, SingleFileFamily } from './types';

export type { ComponentName, SingleFileFamily } from './types';
export { FAMILIES } from './families';

export interface SingleFileReport {
  file: string;
  family: string;
  description: string;
  /** config fields read from the shapes, per component */
  derived: Partial<Record<ComponentName, Json>>;
  /** tensors per component */
  tensors: Partial<Record<ComponentName, number>>;
  /** keys no component reads (a warning when loading) */
  unmatched: string[];
  /** keys known to be unneeded (EMA weights, schedule buffers, ...) */
  ignored: string[];
}

function headerIndex(file: SafetensorsFile): HeaderIndex {
  const m = new Map<string, TensorMeta>();
  for (const n of file.names()) {
    const i = file.info(n);
    m.set(n, { dtype: i.dtype, shape: i.shape });
  }
  return m;
}

function detect(file: string, h: HeaderIndex): SingleFileFamily {
  const family = FAMILIES.find((f) => f.detect(h));
  if (family) return family;
  const prefixes = [...new Set([...h.keys()].map((k) => k.split('.').slice(0, 2).join('.')))].slice(0, 8);
  const hint = [...h.keys()].some((k) => k.startsWith('conditioner.embedders.0.model.'))
    ? ' (an sgm-layout file with label_emb and one OpenCLIP encoder is an SDXL refiner, which is not supported)'
    : [...h.keys()].some((k) => k.startsWith('model.diffusion_model.'))
      ? ''
      : ' (no model.diffusion_model.* keys: not a Stable Diffusion checkpoint; a diffusers folder, a LoRA or a VAE alone is loaded differently)';
  throw new ConfigError(
    `${file}: not a single-file checkpoint of a supported family (${FAMILIES.map((f) => f.name).join(', ')})${hint}; its keys start with ${prefixes.join(', ')}`,
  );
}

function planOf(file: string): { family: SingleFileFamily; plan: FamilyPlan; st: SafetensorsFile } {
  if (!fs.existsSync(file)) throw new FileNotFoundError(file, 'checkpoint');
  const st = SafetensorsFile.open(file);
  try {
    const h = headerIndex(st);
    const family = detect(file, h);
    return { family, plan: family.plan(h), st };
  } catch (e) {
    st.close();
    throw e;
  }
}

/** Reads the header only (no tensor data) and says what the file is. */
export function detectSingleFile(file: string): SingleFileReport {
  const { family, plan, st } = planOf(file);
  st.close();
  return report(file, family, plan);
}

function report(file: string, family: SingleFileFamily, plan: FamilyPlan): SingleFileReport {
  const derived: Partial<Record<ComponentName, Json>> = {};
  const tensors: Partial<Record<ComponentName, number>> = {};
  for (const [c, p] of Object.entries(plan.components) as [ComponentName, NonNullable<FamilyPlan['components'][ComponentName]>][]) {
    derived[c] = p.derived;
    tensors[c] = p.tensors.size;
  }
  return { file, family: family.name, description: family.description, derived, tensors, unmatched: plan.unmatched, ignored: plan.ignored };
}

export interface SingleFileOptions {
  /** a diffusers folder with the model's configs, scheduler and tokenizers (what the weights cannot tell) */
  configDir?: string;
  /** overrides the scheduler's prediction_type */
  prediction?: 'epsilon' | 'v_prediction';
}

export interface SingleFileComponent {
  config: Json;
  source: TensorSource;
}

export interface SingleFileModel {
  family: SingleFileFamily;
  report: SingleFileReport;
  pipelineClass: string;
  forceZerosForEmptyPrompt: boolean;
  components: Partial<Record<ComponentName, SingleFileComponent>>;
  schedulerConfig: SchedulerConfig;
  /** tokenizer folders from configDir, when it has them */
  tokenizerDirs: { tokenizer?: string; tokenizer_2?: string };
}

const normalise = (v: unknown, like: unknown): unknown => (Array.isArray(like) && typeof v === 'number' ? like.map(() => v) : v);
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The config of one component: defaults or the folder's, with the derived fields checked against it and set. */
function componentConfig(family: SingleFileFamily, c: ComponentName, derived: Json, configDir: string | undefined): Json {
  const label = configDir ? path.join(configDir, c, 'config.json') : `${family.name} defaults for ${c}`;
  const base: Json = configDir ? readJsonFile(label) : { ...(family.defaults.configs[c] ?? {}) };
  if (configDir) {
    for (const [k, v] of Object.entries(derived)) {
      if (base[k] === undefined || base[k] === null) continue;
      if (!same(normalise(base[k], v), v)) {
        throw new ConfigError(`${label}: '${k}' is ${JSON.stringify(base[k])} but the single file's weights say ${JSON.stringify(v)} (is this config for another model?)`);
      }
    }
    return { ...base, ...derived };
  }
  const out: Json = { ...base, ...derived };
  const d = family.defaults;
  if (c === 'unet') {
    const channels = derived.block_out_channels as number[];
    if (d.unetHeads !== undefined) out.attention_head_dim = d.unetHeads;
    else out.attention_head_dim = channels.map((ch) => heads(ch, d.headDim.unet as number, `${family.name} UNet`));
  } else if (c === 'text_encoder' || c === 'text_encoder_2') {
    out.num_attention_heads = heads(derived.hidden_size as number, d.headDim[c] as number, `${family.name} ${c}`);
  }
  return out;
}

function heads(width: number, headDim: number, what: string): number {
  if (width % headDim) {
    throw new ConfigError(
      `single-file checkpoint: the ${what} is ${width} wide, not a multiple of the family's head size ${headDim}, so its attention heads are unknown; pass the model's diffusers folder as config (the loadPipeline option config, CLI --config)`,
    );
  }
  return width / headDim;
}

/** Opens a single-file checkpoint: one renamed view per component, configs, scheduler config. */
export function openSingleFile(file: string, options: SingleFileOptions = {}): SingleFileModel {
  const { family, plan, st } = planOf(file);
  st.close();
  const configDir = options.configDir;
  if (configDir && !fs.existsSync(configDir)) throw new FileNotFoundError(configDir, 'config folder');
  const components: Partial<Record<ComponentName, SingleFileComponent>> = {};
  try {
    for (const [c, p] of Object.entries(plan.components) as [ComponentName, NonNullable<FamilyPlan['components'][ComponentName]>][]) {
      const config = componentConfig(family, c, p.derived, configDir);
      components[c] = { config, source: new RenamedSource(SafetensorsFile.open(file), p.tensors, `${file} (${c})`) };
    }
  } catch (e) {
    for (const c of Object.values(components)) c?.source.close();
    throw e;
  }
  let schedulerConfig: SchedulerConfig = { ...family.defaults.schedulerConfig } as SchedulerConfig;
  let pipelineClass = family.defaults.pipelineClass;
  let forceZeros = family.defaults.forceZerosForEmptyPrompt ?? false;
  const tokenizerDirs: SingleFileModel['tokenizerDirs'] = {};
  if (configDir) {
    const sched = path.join(configDir, 'scheduler', 'scheduler_config.json');
    if (fs.existsSync(sched)) schedulerConfig = readSchedulerConfig(sched);
    const indexFile = path.join(configDir, 'model_index.json');
    if (fs.existsSync(indexFile)) {
      const index = readJsonFile(indexFile, 'model_index.json');
      if (typeof index._class_name === 'string') pipelineClass = index._class_name;
      if (index.force_zeros_for_empty_prompt !== undefined) forceZeros = index.force_zeros_for_empty_prompt !== false;
    }
    for (const t of ['tokenizer', 'tokenizer_2'] as const) if (fs.existsSync(path.join(configDir, t))) tokenizerDirs[t] = path.join(configDir, t);
  }
  if (options.prediction) schedulerConfig = { ...schedulerConfig, prediction_type: options.prediction };
  return { family, report: report(file, family, plan), pipelineClass, forceZerosForEmptyPrompt: forceZeros, components, schedulerConfig, tokenizerDirs };
}

/** Whether a path names a single-file checkpoint (a .safetensors file, not a folder). */
export function isSingleFile(p: string): boolean {
  return p.endsWith('.safetensors') && fs.existsSync(p) && fs.statSync(p).isFile();
}
