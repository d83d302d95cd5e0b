// loadPipeline(idOrDir, options): a diffusers folder (or a Hugging Face repo id, downloaded into
// the standard cache) -> a Pipeline. The pipeline class named in model_index.json picks the
// family from the registry below; the components' configs pick the rest.
import * as fs from 'fs';
import * as path from 'path';
import { ArgumentError, ConfigError, DeviceError, FileNotFoundError } from '../errors';
import { resolveModel } from '../hub';
import { type Device, PRECISIONS, type Precision, bf16Support } from '../graph';
import { info } from '../info';
import { CLIPTextModel } from '../models/clip/text_encoder';
import { readJsonFile } from '../models/config';
import { UNet2DConditionModel } from '../models/unet/unet';
import { ControlNetModel } from '../models/controlnet/controlnet';
import { AutoencoderKL } from '../models/vae/autoencoder_kl';
import { AutoencoderTiny } from '../models/vae/autoencoder_tiny';
import { ConsistencyDecoderVAE } from '../models/vae/consistency_decoder';
import { type SchedulerName, readSchedulerConfig } from '../schedulers';
import type { SchedulerConfig } from '../schedulers/common';
import type { LoraSpec } from '../lora';
import { parseCLIPTextConfig } from '../models/clip/config';
import { missingWeights, requiredWeights } from '../models/required';
import { parseUNetConfig } from '../models/unet/config';
import { parseAutoencoderKLConfig } from '../models/vae/config';
import type { Weights } from '../models/weights';
import { type SingleFileModel, isSingleFile, openSingleFile } from '../single_file';
import { openControlNetFile } from '../single_file/controlnet';
import { CLIPTokenizer } from '../tokenizer';
import { SDConditioner, SDXLConditioner } from './conditioning';
import { type Decoder, Pipeline, type PipelineDefaults, type PipelineKind } from './pipeline';

export interface LoadOptions {
  /** 'cpu', 'cuda' (the CUDA backend, not yet validated on a GPU: docs/CUDA.md), or 'auto' (default; the CPU for now) */
  device?: 'auto' | 'cpu' | 'cuda';
  /**
   * The CPU's arithmetic (see Precision): 'fp32' (default) or 'bf16' (CPUs with AVX512_BF16 or
   * AMX-BF16: weights kept as bf16, bf16 operands, float32 accumulation; faster, and images within
   * ~4e-3 relative L2 of fp32's — docs/PERFORMANCE.md). A CPU without bf16 refuses it (DeviceError).
   * CUDA graphs choose their own operand types, so 'bf16' with device 'cuda' is an ArgumentError.
   */
  precision?: Precision;
  /** set by loadPipeline: the device and precision resolved from `device` and `precision` */
  resolved?: { device: Device; precision: Precision };
  /** weight variant to prefer, e.g. 'fp16' */
  variant?: string;
  /**
   * Keep one stage's memory at a time: after the text encoder, the UNet loop and the decoder have
   * run, their compiled graphs (activation arenas) and prepared weights (GEMM panels, Winograd
   * kernels) are freed; the checkpoints stay mapped, and the next generate() prepares them again
   * (about a first run's extra time per stage). For one-shot use (the CLI sets it): SD-Turbo's
   * peak RSS in float32 3.83 -> 2.38 GiB (docs/PERFORMANCE.md, "Memory"). Default false.
   */
  lowMemory?: boolean;
  /** the sampler to use by default instead of the one in scheduler_config.json */
  scheduler?: SchedulerName;
  /** decode with TAESD: true = the standard repo for the family, or a folder / repo id */
  taesd?: boolean | string;
  /** another VAE (an AutoencoderKL or ConsistencyDecoderVAE folder) */
  vae?: string;
  /**
   * ControlNets to load with the model: diffusers ControlNetModel folders or repo ids (e.g.
   * lllyasviel/control_v11p_sd15_scribble, xinsir/controlnet-scribble-sdxl-1.0); generate()'s
   * `control` picks them by index (this order). A ControlNet made for another model is a ConfigError.
   */
  controlnet?: string | string[];
  /** LoRA adapters to fuse at load (see Pipeline.loadLoras) */
  loras?: LoraSpec[];
  /** unknown LoRA keys are an error instead of a warning */
  strictLoras?: boolean;
  /**
   * Single-file checkpoints: a diffusers folder or repo id holding the model's configs, scheduler
   * and tokenizers (what the weights cannot tell); without it the family's defaults apply and
   * the tokenizers come from the family's standard repo.
   */
  config?: string;
  /** single-file checkpoints: the prediction type (SD2 files default to v_prediction) */
  prediction?: 'epsilon' | 'v_prediction';
  /**
   * Run the checkpoint as this diffusers pipeline class instead of the one its model_index.json
   * names (as `StableDiffusionImg2ImgPipeline.from_pretrained(...)` does in diffusers): its
   * behaviour exactly, without the recipe onestep would infer from the UNet. The family must match.
   */
  pipelineClass?: string;
  /** SD text encoders: use the penultimate layer (clip skip 1) */
  clipSkip?: 0 | 1;
  /** hub options */
  revision?: string;
  token?: string;
  onDownloadProgress?: (e: { file: string; downloaded: number; total?: number }) => void;
  signal?: AbortSignal;
}

export interface PipelineClass {
  family: 'sd' | 'sdxl';
  /** how guidance and stepping work; unset: from the UNet ('lcm' when it takes a guidance embedding) */
  kind?: PipelineKind;
  /** the class takes an input image (img2img) */
  img2img: boolean;
  /** the class takes ControlNets (its `image` is the control image unless img2img, then `control_image`) */
  controlnet?: boolean;
}

/** diffusers pipeline class (model_index.json _class_name) -> how the pipeline behaves. One line per pipeline class. */
export const PIPELINE_CLASSES: Readonly<Record<string, PipelineClass>> = {
  StableDiffusionPipeline: { family: 'sd', img2img: false },
  StableDiffusionImg2ImgPipeline: { family: 'sd', img2img: true },
  LatentConsistencyModelPipeline: { family: 'sd', kind: 'lcm', img2img: false },
  LatentConsistencyModelImg2ImgPipeline: { family: 'sd', kind: 'lcm', img2img: true },
  RectifiedFlowPipeline: { family: 'sd', kind: 'flow', img2img: false },
  StableDiffusionXLPipeline: { family: 'sdxl', img2img: false },
  StableDiffusionXLImg2ImgPipeline: { family: 'sdxl', img2img: true },
  StableDiffusionControlNetPipeline: { family: 'sd', img2img: false, controlnet: true },
  StableDiffusionControlNetImg2ImgPipeline: { family: 'sd', img2img: true, controlnet: true },
  StableDiffusionXLControlNetPipeline: { family: 'sdxl', img2img: false, controlnet: true },
  StableDiffusionXLControlNetImg2ImgPipeline: { family: 'sdxl', img2img: true, controlnet: true },
};

/** The behaviour of a diffusers pipeline class, or undefined when it is not supported. */
export function pipelineClassInfo(name: string): PipelineClass | undefined {
  return Object.prototype.hasOwnProperty.call(PIPELINE_CLASSES, name) ? PIPELINE_CLASSES[name] : undefined;
}

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
  const patterns = PURPOSE_PATTERNS[o.purpose];
  return (await resolveModel(idOrDir, patterns ? { ...hubOptions, allowPatterns: patterns } : hubOptions)).dir;
};

/** What is fetched from a repo used only for part of a model (no weights). */
const PURPOSE_PATTERNS: Record<string, string[]> = {
  config: ['model_index.json', '*/config.json', 'scheduler/*', 'tokenizer/*', 'tokenizer_2/*'],
  tokenizer: ['tokenizer/*', 'tokenizer_2/*'],
};

let resolver: ModelResolver = hubResolver;

/** Installs how repo ids become folders (the hub module registers itself). */
export function setModelResolver(r: ModelResolver): void {
  resolver = r;
}

export function resolveModelFolder(idOrDir: string, options: LoadOptions & { purpose: string }): Promise<string> {
  return resolver(idOrDir, options);
}

/**
 * Where the networks run. 'cuda' needs a usable CUDA backend. 'auto' is the CPU until the CUDA
 * kernels have passed the goldens on a GPU (docs/CUDA.md): no session has had one yet.
 */
const AUTO_USES_CUDA = false;

/** The precision asked for, checked against the device and this CPU before anything loads. */
function resolvePrecision(precision: LoadOptions['precision'], device: Device): Precision {
  if (precision === undefined) return 'fp32';
  if (!PRECISIONS.includes(precision)) throw new ArgumentError(`precision must be ${PRECISIONS.map((p) => `'${p}'`).join(' or ')}, got ${JSON.stringify(precision)}`);
  if (precision === 'bf16') {
    if (device === 'cuda') throw new ArgumentError("precision 'bf16' is the CPU backend's; CUDA graphs run fp16 (bf16 where a model needs fp32's range) on their own");
    const bf16 = bf16Support();
    if ('reason' in bf16) throw new DeviceError(`precision 'bf16': ${bf16.reason}`);
  }
  return precision;
}

function resolveDevice(device: LoadOptions['device']): Device {
  if (device === undefined || device === 'auto') return AUTO_USES_CUDA && info().backends.cuda.usable ? 'cuda' : 'cpu';
  if (device === 'cpu') return 'cpu';
  if (device !== 'cuda') throw new ArgumentError(`device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
  const cuda = info().backends.cuda;
  if (!cuda.usable) throw new DeviceError(`device 'cuda' is not available: ${cuda.reason}`);
  return 'cuda';
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

/** The checkpoint's own VAE: a folder (whose config names its class) or a model made on demand (single files). */
interface OwnVae {
  dir?: string;
  model?: () => AutoencoderKL;
}

async function loadDecoder(family: 'sd' | 'sdxl', own: OwnVae, o: LoadOptions): Promise<{ decoder: Decoder; encoder?: AutoencoderKL }> {
  if (o.taesd) {
    const id = typeof o.taesd === 'string' ? o.taesd : TAESD_REPOS[family];
    const folder = await resolveModelFolder(id, { ...o, purpose: 'taesd' });
    return { decoder: { kind: 'tiny', model: AutoencoderTiny.fromPretrained(folder, { variant: o.variant, ...o.resolved }) } };
  }
  const ownKL = (): AutoencoderKL | undefined => {
    if (own.model) return own.model();
    if (own.dir && fs.existsSync(path.join(own.dir, 'config.json')) && readJsonFile(path.join(own.dir, 'config.json'))._class_name === 'AutoencoderKL') {
      return AutoencoderKL.fromPretrained(own.dir, { variant: o.variant, ...o.resolved });
    }
    return undefined;
  };
  const vaeDir = o.vae ? await resolveModelFolder(o.vae, { ...o, purpose: 'vae' }) : own.dir;
  if (!vaeDir) return { decoder: { kind: 'kl', model: ownKL() as AutoencoderKL } };
  const cls = readJsonFile(path.join(vaeDir, 'config.json'))._class_name;
  if (cls === 'ConsistencyDecoderVAE') {
    return { decoder: { kind: 'consistency', model: ConsistencyDecoderVAE.fromPretrained(vaeDir, { variant: o.variant, ...o.resolved }) }, encoder: ownKL() };
  }
  if (cls === 'AutoencoderTiny') return { decoder: { kind: 'tiny', model: AutoencoderTiny.fromPretrained(vaeDir, { variant: o.variant, ...o.resolved }) } };
  return { decoder: { kind: 'kl', model: AutoencoderKL.fromPretrained(vaeDir, { variant: o.variant, ...o.resolved }) } };
}

/** What a checkpoint gives, before the family's recipe is applied. */
interface Loaded {
  name: string;
  /** model_index.json's pipeline class */
  cls: string;
  /** where cls was read, for messages */
  clsSource: string;
  forceZerosForEmptyPrompt: boolean;
  unet: UNet2DConditionModel;
  schedulerConfig: SchedulerConfig;
  tokenizers: CLIPTokenizer[];
  textEncoders: CLIPTextModel[];
  vae: OwnVae;
}

async function fromFolder(dir: string, options: LoadOptions, id = dir): Promise<Loaded> {
  const indexFile = path.join(dir, 'model_index.json');
  const index = readJsonFile(indexFile, 'model_index.json');
  const v = { variant: options.variant, ...options.resolved };
  const two = index.text_encoder_2 !== undefined && index.text_encoder_2 !== null;
  const names = two ? ['', '_2'] : [''];
  return {
    // a local folder by its name; a hub model by its repo id (not the cache's snapshot folder)
    name: fs.existsSync(id) ? path.basename(path.resolve(dir)) : id,
    cls: String(index._class_name ?? ''),
    clsSource: indexFile,
    forceZerosForEmptyPrompt: index.force_zeros_for_empty_prompt !== false,
    unet: UNet2DConditionModel.fromPretrained(path.join(dir, 'unet'), v),
    schedulerConfig: readSchedulerConfig(path.join(dir, 'scheduler', 'scheduler_config.json')),
    tokenizers: await Promise.all(names.map((n) => CLIPTokenizer.fromPretrained(path.join(dir, `tokenizer${n}`)))),
    textEncoders: names.map((n) => CLIPTextModel.fromPretrained(path.join(dir, `text_encoder${n}`), v)),
    vae: { dir: path.join(dir, 'vae') },
  };
}

/** Every weight each component's architecture reads is in the file, with its shape (else a ConfigError listing them). */
function checkComplete(file: string, sf: SingleFileModel): void {
  const problems: string[] = [];
  for (const [name, comp] of Object.entries(sf.components)) {
    if (!comp) continue;
    const label = `${path.basename(file)} (${name})`;
    const make =
      name === 'unet'
        ? (w: Weights) => new UNet2DConditionModel(parseUNetConfig(comp.config, label), w)
        : name === 'vae'
          ? (w: Weights) => new AutoencoderKL(parseAutoencoderKLConfig(comp.config, label), w)
          : (w: Weights) => new CLIPTextModel(parseCLIPTextConfig(comp.config, label), w);
    for (const p of missingWeights(comp.source, requiredWeights(make))) problems.push(`${name}: ${p}`);
  }
  if (problems.length) {
    for (const comp of Object.values(sf.components)) comp?.source.close();
    throw new ConfigError(`${file}: ${problems.length} weights the ${sf.family.name} architecture needs are missing or misshapen: ${problems.slice(0, 10).join('; ')}${problems.length > 10 ? '; ...' : ''}`);
  }
}

async function fromSingleFile(file: string, options: LoadOptions): Promise<Loaded> {
  const configDir = options.config ? await resolveModelFolder(options.config, { ...options, purpose: 'config' }) : undefined;
  const sf = openSingleFile(file, { configDir, prediction: options.prediction });
  const label = path.basename(file);
  if (sf.report.unmatched.length) {
    const list = sf.report.unmatched.slice(0, 10).join(', ');
    process.emitWarning(`${file}: ${sf.report.unmatched.length} tensors match no component and were not loaded: ${list}${sf.report.unmatched.length > 10 ? ', ...' : ''}`, { code: 'ONESTEP_SINGLE_FILE_UNMATCHED' });
  }
  const c = sf.components;
  checkComplete(file, sf);
  const encoders = (['text_encoder', 'text_encoder_2'] as const).filter((n) => c[n]);
  const tokenizerDir = async (n: 'tokenizer' | 'tokenizer_2'): Promise<string> => {
    const have = sf.tokenizerDirs[n];
    if (have) return have;
    const repo = sf.family.defaults.configRepo;
    let dir: string | undefined;
    try {
      dir = await resolveModelFolder(repo, { ...options, purpose: 'tokenizer' });
    } catch (e) {
      throw new ConfigError(
        `${file}: a single file holds no tokenizer; pass config: a diffusers folder or repo id with ${n}/ (for this ${sf.family.name} model, e.g. ${repo}); fetching ${repo}/${n} failed: ${(e as Error).message}`,
      );
    }
    if (!fs.existsSync(path.join(dir, n))) throw new ConfigError(`${file}: ${repo} has no ${n}/ folder; pass config: a diffusers folder with ${n}/`);
    return path.join(dir, n);
  };
  return {
    name: label.replace(/\.safetensors$/, ''),
    cls: sf.pipelineClass,
    clsSource: configDir ? path.join(configDir, 'model_index.json') : `${sf.family.name} defaults`,
    forceZerosForEmptyPrompt: sf.forceZerosForEmptyPrompt,
    unet: UNet2DConditionModel.fromSource(c.unet!.config, c.unet!.source, `${label} (unet)`, options.resolved),
    schedulerConfig: sf.schedulerConfig,
    tokenizers: await Promise.all(encoders.map(async (n) => CLIPTokenizer.fromPretrained(await tokenizerDir(n === 'text_encoder' ? 'tokenizer' : 'tokenizer_2')))),
    textEncoders: encoders.map((n) => CLIPTextModel.fromSource(c[n]!.config, c[n]!.source, `${label} (${n})`, options.resolved)),
    vae: { model: () => AutoencoderKL.fromSource(c.vae!.config, c.vae!.source, `${label} (vae)`, options.resolved) },
  };
}

export async function loadPipeline(idOrDir: string, options: LoadOptions = {}): Promise<Pipeline> {
  if (typeof idOrDir !== 'string' || idOrDir === '') throw new ArgumentError('loadPipeline: give a model folder, a single-file .safetensors checkpoint or a Hugging Face repo id');
  if (options.lowMemory !== undefined && typeof options.lowMemory !== 'boolean') throw new ArgumentError(`lowMemory must be true or false, got ${JSON.stringify(options.lowMemory)}`);
  if (options.pipelineClass !== undefined && !pipelineClassInfo(options.pipelineClass)) {
    throw new ArgumentError(`pipelineClass '${options.pipelineClass}' is not supported (supported: ${Object.keys(PIPELINE_CLASSES).join(', ')})`);
  }
  const device = resolveDevice(options.device);
  options = { ...options, resolved: { device, precision: resolvePrecision(options.precision, device) } };
  if (/\.(ckpt|pt|pth|bin)$/i.test(idOrDir) && fs.existsSync(idOrDir)) {
    throw new ArgumentError(`${idOrDir}: pickle checkpoints can run code when loaded and are not read; convert it to .safetensors`);
  }
  const loaded = isSingleFile(idOrDir)
    ? await fromSingleFile(idOrDir, options)
    : await fromFolder(await resolveModelFolder(idOrDir, { ...options, purpose: 'pipeline' }), options, idOrDir);
  const entry = pipelineClassInfo(loaded.cls);
  if (!entry) {
    for (const comp of [loaded.unet, ...loaded.textEncoders]) comp.dispose();
    throw new ConfigError(`${loaded.clsSource}: pipeline class '${loaded.cls}' is not supported (supported: ${Object.keys(PIPELINE_CLASSES).join(', ')})`);
  }
  const sdxl = entry.family === 'sdxl' || loaded.textEncoders.length === 2;
  const family = sdxl ? 'sdxl' : 'sd';
  const { unet, tokenizers: tok, textEncoders: te } = loaded;
  const asked = options.pipelineClass === undefined ? undefined : pipelineClassInfo(options.pipelineClass);
  if (asked && asked.family !== family) {
    for (const comp of [unet, ...te]) comp.dispose();
    throw new ArgumentError(`pipelineClass ${options.pipelineClass} is for ${asked.family.toUpperCase()} models; ${loaded.name} is ${family.toUpperCase()}`);
  }
  const kind: PipelineKind = asked ? (asked.kind ?? 'standard') : (entry.kind ?? (unet.config.timeCondProjDim ? 'lcm' : 'standard'));
  const conditioner = sdxl ? new SDXLConditioner(tok[0], te[0], tok[1], te[1]) : new SDConditioner(tok[0], te[0], options.clipSkip ?? 0);
  const { decoder, encoder } = await loadDecoder(family, loaded.vae, options);
  const defaults = defaultsFor(kind, unet, loaded.schedulerConfig);
  if (options.scheduler) defaults.scheduler = options.scheduler;
  const loadControlNet = async (id: string, o: { variant?: string; config?: string }) => {
    // the original single-file layout (control_*.safetensors), else a diffusers folder or repo id
    if (isSingleFile(id)) return openControlNetFile(id, { config: o.config, ...options.resolved });
    const dir = await resolveModelFolder(id, { ...options, variant: o.variant ?? options.variant, purpose: 'controlnet' });
    return ControlNetModel.fromPretrained(dir, { variant: o.variant ?? options.variant, ...options.resolved });
  };
  const controlNets: { name: string; model: ControlNetModel }[] = [];
  let pipe: Pipeline;
  try {
    for (const id of typeof options.controlnet === 'string' ? [options.controlnet] : (options.controlnet ?? [])) controlNets.push({ name: id, model: await loadControlNet(id, {}) });
    pipe = new Pipeline({
      name: loaded.name,
      family,
      kind,
      conditioner,
      unet,
      schedulerConfig: loaded.schedulerConfig,
      decoder,
      encoder,
      defaults,
      forceZerosForEmptyPrompt: sdxl ? loaded.forceZerosForEmptyPrompt : false,
      precision: options.resolved?.precision,
      lowMemory: options.lowMemory === true,
      controlNets,
      loadControlNet,
    });
  } catch (e) {
    // a ControlNet that does not load, or is for another model: nothing stays loaded
    for (const c of controlNets) c.model.dispose();
    conditioner.dispose();
    unet.dispose();
    decoder.model.dispose();
    encoder?.dispose();
    throw e;
  }
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
