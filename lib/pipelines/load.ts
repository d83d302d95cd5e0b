// loadPipeline(idOrDir, options): a diffusers folder (or a Hugging Face repo id, downloaded into
// the standard cache) -> a Pipeline. The pipeline class named in model_index.json picks the
// family from the registry below; the components' configs pick the rest.
import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError, ConfigError, DeviceError, FileNotFoundError } from '../errors';
import { resolveModel } from '../hub';
import { info } from '../info';
import { CLIPTextModel } from '../models/clip/text_encoder';
import { readJsonFile } from '../models/config';
import { UNet2DConditionModel } from '../models/unet/unet';
import { AutoencoderKL } from '../models/vae/autoencoder_kl';
import { AutoencoderTiny } from '../models/vae/autoencoder_tiny';
import { ConsistencyDecoderVAE } from '../models/vae/consistency_decoder';
import { type SchedulerName, readSchedulerConfig } from '../schedulers';
import type { SchedulerConfig } from '../schedulers/common';
import type { LoraSpec } from '../lora';
import { CLIPTokenizer } from '../tokenizer';
import { SDConditioner, SDXLConditioner } from './conditioning';
import { type Decoder, Pipeline, type PipelineDefaults, type PipelineKind } from './pipeline';

export interface LoadOptions {
  /** 'auto' (default) and 'cpu' run on the CPU; 'cuda' is refused until the CUDA backend runs networks */
  device?: 'auto' | 'cpu' | 'cuda';
  /** weight variant to prefer, e.g. 'fp16' */
  variant?: string;
  /** the sampler to use by default instead of the one in scheduler_config.json */
  scheduler?: SchedulerName;
  /** decode with TAESD: true = the standard repo for the family, or a folder / repo id */
  taesd?: boolean | string;
  /** another VAE (an AutoencoderKL or ConsistencyDecoderVAE folder) */
  vae?: string;
  /** LoRA adapters to fuse at load (see Pipeline.loadLoras) */
  loras?: LoraSpec[];
  /** unknown LoRA keys are an error instead of a warning */
  strictLoras?: boolean;
  /** SD text encoders: use the penultimate layer (clip skip 1) */
  clipSkip?: 0 | 1;
  /** hub options */
  revision?: string;
  token?: string;
  onDownloadProgress?: (e: { file: string; downloaded: number; total?: number }) => void;
  signal?: AbortSignal;
}

/** model_index.json _class_name -> how the pipeline behaves. One line per pipeline class. */
const PIPELINES: Record<string, { family: 'sd' | 'sdxl'; kind?: PipelineKind }> = {
  StableDiffusionPipeline: { family: 'sd' },
  StableDiffusionImg2ImgPipeline: { family: 'sd' },
  LatentConsistencyModelPipeline: { family: 'sd', kind: 'lcm' },
  LatentConsistencyModelImg2ImgPipeline: { family: 'sd', kind: 'lcm' },
  RectifiedFlowPipeline: { family: 'sd', kind: 'flow' },
  StableDiffusionXLPipeline: { family: 'sdxl' },
  StableDiffusionXLImg2ImgPipeline: { family: 'sdxl' },
};

/** Hub repo ids of the TAESD decoders, per family. */
export const TAESD_REPOS = { sd: 'madebyollin/taesd', sdxl: 'madebyollin/taesdxl' };

export type ModelResolver = (idOrDir: string, options: LoadOptions & { purpose: string }) => Promise<string>;

/** The pipeline components onestep reads (a repo's safety_checker, feature_extractor, ... are not downloaded). */
const USED_COMPONENTS = ['scheduler', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'unet', 'vae'];

/** Local folders as they are; repo ids through the Hugging Face cache (lib/hub). */
const hubResolver: ModelResolver = async (idOrDir, o) => {
  if (fs.existsSync(idOrDir)) return idOrDir;
  const hubOptions = { revision: o.revision, token: o.token, signal: o.signal, variant: o.variant, onProgress: o.onDownloadProgress };
  if (o.purpose === 'pipeline' || o.purpose === 'download') {
    // read model_index.json first, then fetch only the components a pipeline uses
    const first = await resolveModel(idOrDir, { ...hubOptions, allowPatterns: ['model_index.json', 'config.json'] });
    const indexFile = path.join(first.dir, 'model_index.json');
    if (fs.existsSync(indexFile)) {
      const index = readJsonFile(indexFile, 'model_index.json');
      const components = USED_COMPONENTS.filter((c) => Array.isArray(index[c]) && (index[c] as unknown[])[0] !== null);
      return (await resolveModel(idOrDir, { ...hubOptions, components })).dir;
    }
  }
  return (await resolveModel(idOrDir, hubOptions)).dir;
};

let resolver: ModelResolver = hubResolver;

/** Installs how repo ids become folders (the hub module registers itself). */
export function setModelResolver(r: ModelResolver): void {
  resolver = r;
}

export function resolveModelFolder(idOrDir: string, options: LoadOptions & { purpose: string }): Promise<string> {
  return resolver(idOrDir, options);
}

function checkDevice(device: LoadOptions['device']): void {
  if (device === undefined || device === 'auto' || device === 'cpu') return;
  if (device !== 'cuda') throw new ArgumentError(`device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
  const cuda = info().backends.cuda;
  if (!cuda.usable) throw new DeviceError(`device 'cuda' is not available: ${cuda.reason}`);
  throw new DeviceError("device 'cuda': the CUDA backend does not run networks yet; use device 'cpu' or 'auto'");
}

/** The published recipes, keyed by what the checkpoint says about itself (see docs/MODELS.md). */
function defaultsFor(kind: PipelineKind, unet: UNet2DConditionModel, sched: SchedulerConfig): PipelineDefaults {
  const size = unet.config.sampleSize * 8;
  const base = { width: size, height: size };
  const cls = sched._class_name as string | undefined;
  const trailing = sched.timestep_spacing === 'trailing';
  if (kind === 'flow') return { ...base, steps: 1, guidanceScale: 1, scheduler: 'flow' };
  if (kind === 'lcm' || unet.config.timeCondProjDim) return { ...base, steps: 4, guidanceScale: 8.5, scheduler: 'lcm' };
  switch (cls) {
    case 'LCMScheduler':
      return { ...base, steps: 4, guidanceScale: 1 };
    case 'TCDScheduler':
      return { ...base, steps: 4, guidanceScale: 1, eta: 0.3 };
    case 'EulerAncestralDiscreteScheduler':
    case 'EulerDiscreteScheduler':
      return trailing ? { ...base, steps: 1, guidanceScale: 0 } : { ...base, steps: 25, guidanceScale: 7.5 };
    case 'DDIMScheduler':
      return trailing ? { ...base, steps: 4, guidanceScale: 1 } : { ...base, steps: 25, guidanceScale: 7.5 };
    default:
      return { ...base, steps: 25, guidanceScale: 7.5 };
  }
}

async function loadDecoder(family: 'sd' | 'sdxl', dir: string, o: LoadOptions): Promise<{ decoder: Decoder; encoder?: AutoencoderKL }> {
  if (o.taesd) {
    const id = typeof o.taesd === 'string' ? o.taesd : TAESD_REPOS[family];
    const folder = await resolveModelFolder(id, { ...o, purpose: 'taesd' });
    return { decoder: { kind: 'tiny', model: AutoencoderTiny.fromPretrained(folder, { variant: o.variant }) } };
  }
  const vaeDir = o.vae ? await resolveModelFolder(o.vae, { ...o, purpose: 'vae' }) : path.join(dir, 'vae');
  const cls = readJsonFile(path.join(vaeDir, 'config.json'))._class_name;
  if (cls === 'ConsistencyDecoderVAE') {
    const encoder = fs.existsSync(path.join(dir, 'vae', 'config.json')) ? AutoencoderKL.fromPretrained(path.join(dir, 'vae'), { variant: o.variant }) : undefined;
    return { decoder: { kind: 'consistency', model: ConsistencyDecoderVAE.fromPretrained(vaeDir, { variant: o.variant }) }, encoder };
  }
  if (cls === 'AutoencoderTiny') return { decoder: { kind: 'tiny', model: AutoencoderTiny.fromPretrained(vaeDir, { variant: o.variant }) } };
  return { decoder: { kind: 'kl', model: AutoencoderKL.fromPretrained(vaeDir, { variant: o.variant }) } };
}

export async function loadPipeline(idOrDir: string, options: LoadOptions = {}): Promise<Pipeline> {
  if (typeof idOrDir !== 'string' || idOrDir === '') throw new ArgumentError('loadPipeline: give a model folder or a Hugging Face repo id');
  checkDevice(options.device);
  const dir = await resolveModelFolder(idOrDir, { ...options, purpose: 'pipeline' });
  const index = readJsonFile(path.join(dir, 'model_index.json'), 'model_index.json');
  const cls = String(index._class_name ?? '');
  const entry = PIPELINES[cls];
  if (!entry) throw new ConfigError(`${path.join(dir, 'model_index.json')}: pipeline class '${cls}' is not supported (supported: ${Object.keys(PIPELINES).join(', ')})`);
  const sdxl = entry.family === 'sdxl' || index.text_encoder_2 !== undefined;
  const family = sdxl ? 'sdxl' : 'sd';
  const v = { variant: options.variant };
  const unet = UNet2DConditionModel.fromPretrained(path.join(dir, 'unet'), v);
  const kind: PipelineKind = entry.kind ?? (unet.config.timeCondProjDim ? 'lcm' : 'standard');
  const schedulerConfig = readSchedulerConfig(path.join(dir, 'scheduler', 'scheduler_config.json'));
  const conditioner = sdxl
    ? new SDXLConditioner(
        await CLIPTokenizer.fromPretrained(path.join(dir, 'tokenizer')),
        CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'), v),
        await CLIPTokenizer.fromPretrained(path.join(dir, 'tokenizer_2')),
        CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder_2'), v),
      )
    : new SDConditioner(await CLIPTokenizer.fromPretrained(path.join(dir, 'tokenizer')), CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'), v), options.clipSkip ?? 0);
  const { decoder, encoder } = await loadDecoder(family, dir, options);
  const defaults = defaultsFor(kind, unet, schedulerConfig);
  if (options.scheduler) defaults.scheduler = options.scheduler;
  const pipe = new Pipeline({
    name: path.basename(path.resolve(dir)),
    family,
    kind,
    conditioner,
    unet,
    schedulerConfig,
    decoder,
    encoder,
    defaults,
    forceZerosForEmptyPrompt: sdxl ? index.force_zeros_for_empty_prompt !== false : false,
  });
  if (options.loras?.length) {
    try {
      const resolved = await Promise.all(options.loras.map(async (l) => ({ ...l, path: await resolveLoraFile(l.path, options) })));
      await pipe.loadLoras(resolved, { strict: options.strictLoras });
    } catch (e) {
      pipe.dispose();
      throw e;
    }
  }
  return pipe;
}

/** A LoRA file path as given, or the single .safetensors of a hub repo (pytorch_lora_weights.safetensors first). */
export async function resolveLoraFile(p: string, options: LoadOptions = {}): Promise<string> {
  if (fs.existsSync(p)) return p;
  if (p.endsWith('.safetensors') || path.isAbsolute(p) || p.startsWith('.')) throw new FileNotFoundError(p, 'LoRA file');
  const dir = (await resolveModel(p, { revision: options.revision, token: options.token, signal: options.signal, allowPatterns: ['*.safetensors'], onProgress: options.onDownloadProgress })).dir;
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  const pick = files.includes('pytorch_lora_weights.safetensors') ? 'pytorch_lora_weights.safetensors' : files.length === 1 ? files[0] : undefined;
  if (!pick) throw new ArgumentError(`${p}: expected one .safetensors LoRA file in the repo, found ${files.length}: ${files.join(', ')}`);
  return path.join(dir, pick);
}
