// pipeline goldens: a whole generation with the reference's recorded random draws injected, every
// recorded intermediate (token ids, embeddings, each step's UNet input / output / latents, the
// decoder input, the image) compared with ours. Everything the run needs comes from the case:
// the pipeline class, the scheduler config, every `call` argument (each mapped to a
// GenerateOptions field, or the case fails naming it), the LoRAs fused before the call, the VAE.
import * as path from 'path';
import { type GenerateOptions, type LoadOptions, PIPELINE_CLASSES, RecordedNoise, loadPipeline, pipelineClassInfo } from '../../pipelines';
import type { SafetensorsFile } from '../../safetensors';
import { schedulerForClass } from '../../schedulers';
import type { SchedulerConfig } from '../../schedulers/common';
import { CaseFieldError, checkFields, fieldNumber, fieldNumbers, isObject } from '../fields';
import { pipelineSource } from '../models';
import { fixtureLora } from './lora';
import type { CaseRunner } from './network';

export const PIPELINE_FIELDS = [
  'call',
  'pipeline',
  'scheduler',
  'scheduler_config',
  'scheduler_step_kwargs',
  'timesteps',
  'timesteps_run',
  'init_noise_sigma',
  'num_unet_calls',
  'recorded_random_draws',
  'vae_model',
  'loras',
];

const CALL = 'call field';

const str = (v: unknown, k: string): string => {
  if (typeof v !== 'string') throw new CaseFieldError(`${CALL} '${k}' must be a string, got ${JSON.stringify(v)}`);
  return v;
};
const strs = (v: unknown, k: string): string | string[] => {
  if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v as string[];
  return str(v, k);
};
const num = (v: unknown, k: string): number => fieldNumber({ [k]: v }, k, CALL);
const int = (v: unknown, k: string): number => {
  const n = num(v, k);
  if (!Number.isInteger(n)) throw new CaseFieldError(`${CALL} '${k}' must be an integer, got ${n}`);
  return n;
};
const pair = (v: unknown, k: string): [number, number] => fieldNumbers({ [k]: v }, k, CALL, 2) as [number, number];

/** A call argument given as a tensor of the golden: '<tensor: NAME>'. */
function tensorRef(golden: SafetensorsFile, v: unknown, k: string): { name: string; shape: number[]; data: Float32Array } {
  const m = typeof v === 'string' ? /^<tensor: ([\w.]+)>$/.exec(v) : null;
  if (!m) throw new CaseFieldError(`${CALL} '${k}' must name a tensor of the golden ('<tensor: NAME>'), got ${JSON.stringify(v)}`);
  if (!golden.has(m[1])) throw new CaseFieldError(`${CALL} '${k}' names tensor '${m[1]}', which is not in the file`);
  return { name: m[1], shape: golden.info(m[1]).shape, data: golden.float32(m[1]) };
}

type CallMapper = (v: unknown, o: GenerateOptions, golden: SafetensorsFile) => void;

/** Every diffusers __call__ argument the runner understands, and the GenerateOptions field it becomes. */
const CALL_FIELDS: Record<string, CallMapper> = {
  prompt: (v, o) => void (o.prompt = strs(v, 'prompt')),
  negative_prompt: (v, o) => void (o.negativePrompt = strs(v, 'negative_prompt')),
  guidance_scale: (v, o) => void (o.guidanceScale = num(v, 'guidance_scale')),
  num_inference_steps: (v, o) => void (o.steps = int(v, 'num_inference_steps')),
  num_images_per_prompt: (v, o) => void (o.batchSize = int(v, 'num_images_per_prompt')),
  width: (v, o) => void (o.width = int(v, 'width')),
  height: (v, o) => void (o.height = int(v, 'height')),
  eta: (v, o) => void (o.eta = num(v, 'eta')),
  strength: (v, o) => void (o.strength = num(v, 'strength')),
  timesteps: (v, o) => void (o.timesteps = fieldNumbers({ timesteps: v }, 'timesteps', CALL)),
  image: (v, o, g) => {
    const t = tensorRef(g, v, 'image');
    if (t.shape.length !== 4 || t.shape[0] !== 1 || t.shape[1] !== 3) throw new CaseFieldError(`${CALL} 'image': tensor '${t.name}' must be [1, 3, H, W], got [${t.shape}]`);
    o.image = { width: t.shape[3], height: t.shape[2], pixels: t.data };
  },
  latents: (v, o, g) => void (o.latents = tensorRef(g, v, 'latents').data),
  original_size: (v, o) => void (o.originalSize = pair(v, 'original_size')),
  crops_coords_top_left: (v, o) => void (o.cropsCoordsTopLeft = pair(v, 'crops_coords_top_left')),
  target_size: (v, o) => void (o.targetSize = pair(v, 'target_size')),
  negative_original_size: (v, o) => void (o.negativeOriginalSize = pair(v, 'negative_original_size')),
  negative_crops_coords_top_left: (v, o) => void (o.negativeCropsCoordsTopLeft = pair(v, 'negative_crops_coords_top_left')),
  negative_target_size: (v, o) => void (o.negativeTargetSize = pair(v, 'negative_target_size')),
  // what the pipeline returns, not what it computes: only the forms that keep the decoded image
  output_type: (v) => {
    if (!['pt', 'np', 'pil'].includes(str(v, 'output_type'))) throw new CaseFieldError(`${CALL} 'output_type' ${JSON.stringify(v)} is not supported (pt, np, pil)`);
  },
  return_dict: (v) => {
    if (typeof v !== 'boolean') throw new CaseFieldError(`${CALL} 'return_dict' must be a boolean`);
  },
};

/** The GenerateOptions of a case's call; an argument without a mapping fails the case, naming it. */
export function callOptions(call: unknown, golden: SafetensorsFile): GenerateOptions {
  if (!isObject(call)) throw new CaseFieldError(`case field 'call' must be an object of the pipeline's arguments, got ${JSON.stringify(call)}`);
  const unknown = Object.keys(call).filter((k) => !(k in CALL_FIELDS));
  if (unknown.length) throw new CaseFieldError(`${CALL}${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not supported`);
  if (call.prompt === undefined) throw new CaseFieldError(`the call has no prompt`);
  const o = { prompt: '' } as GenerateOptions;
  for (const [k, v] of Object.entries(call)) CALL_FIELDS[k](v, o, golden);
  return o;
}

/** `recorded_random_draws`: "where[shape]" per draw, in the reference's order. */
function recordedShapes(v: unknown): number[][] {
  if (!Array.isArray(v)) throw new CaseFieldError(`case field 'recorded_random_draws' must be a list, got ${JSON.stringify(v)}`);
  return v.map((d) => {
    const m = typeof d === 'string' ? /^[\w.]+\[([\d, ]*)\]$/.exec(d) : null;
    if (!m) throw new CaseFieldError(`recorded_random_draws entry ${JSON.stringify(d)} is not 'where[shape]'`);
    return m[1].split(',').map((x) => Number(x.trim()));
  });
}

const sameList = (a: ArrayLike<number>, b: ArrayLike<number>) => a.length === b.length && Array.from(a).every((x, i) => x === b[i]);

export const pipelineCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  // ---- everything the case says, checked before the work -------------------------------------
  const cls = typeof meta.pipeline === 'string' ? meta.pipeline : undefined;
  const entry = cls ? pipelineClassInfo(cls) : undefined;
  if (!cls || !entry) throw new CaseFieldError(`pipeline ${JSON.stringify(meta.pipeline)} is not supported (supported: ${Object.keys(PIPELINE_CLASSES).join(', ')})`);
  const opts = callOptions(meta.call, golden);
  if (entry.img2img !== (opts.image !== undefined)) throw new CaseFieldError(`${cls} ${entry.img2img ? 'needs' : 'takes no'} an image, the call ${opts.image ? 'gives' : 'gives none'}`);
  const flow = entry.kind === 'flow';
  let schedulerConfig: SchedulerConfig | undefined;
  if (meta.scheduler_config !== undefined) {
    if (!isObject(meta.scheduler_config)) throw new CaseFieldError(`case field 'scheduler_config' must be an object`);
    schedulerConfig = meta.scheduler_config as SchedulerConfig;
  }
  const schedClass = schedulerConfig?._class_name;
  if (meta.scheduler !== undefined && meta.scheduler !== schedClass) throw new CaseFieldError(`scheduler ${JSON.stringify(meta.scheduler)} is not the scheduler_config's class ${JSON.stringify(schedClass)}`);
  const schedName = flow ? 'flow' : typeof schedClass === 'string' ? schedulerForClass(schedClass) : undefined;
  if (!schedName) throw new CaseFieldError(`scheduler_config class ${JSON.stringify(schedClass)} is not supported`);
  const stepKwargs = meta.scheduler_step_kwargs ?? {};
  if (!isObject(stepKwargs)) throw new CaseFieldError(`case field 'scheduler_step_kwargs' must be an object`);
  checkFields(stepKwargs, ['eta'], 'scheduler_step_kwargs field', []);
  // the pipelines pass their eta argument (default 0) to step(): the two must agree
  if (stepKwargs.eta !== undefined && fieldNumber(stepKwargs, 'eta', 'scheduler_step_kwargs') !== (opts.eta ?? 0)) {
    throw new CaseFieldError(`scheduler_step_kwargs eta ${stepKwargs.eta} differs from the call's eta ${opts.eta ?? 0}`);
  }
  const vae = meta.vae_model === undefined ? undefined : path.join(ctx.root, 'models', String(meta.vae_model));
  let loras: LoadOptions['loras'];
  if (meta.loras !== undefined) {
    if (!Array.isArray(meta.loras)) throw new CaseFieldError(`case field 'loras' must be a list of {file, scale}`);
    loras = meta.loras.map((x, i) => {
      if (!isObject(x)) throw new CaseFieldError(`loras[${i}] must be {file, scale}`);
      checkFields(x, ['file', 'scale'], `loras[${i}] field`, []);
      return { path: fixtureLora(ctx.root, x.file, `loras[${i}]`), scale: fieldNumber(x, 'scale', `loras[${i}]`) };
    });
  }
  const shapes = meta.recorded_random_draws === undefined ? undefined : recordedShapes(meta.recorded_random_draws);

  // the reference's random draws, in its order
  const has = (k: string) => golden.has(k);
  const draws: { label: string; data: Float32Array }[] = [];
  if (has('vae_sample_noise')) draws.push({ label: 'vae_sample_noise', data: golden.float32('vae_sample_noise') });
  if (has('img2img_noise')) draws.push({ label: 'img2img_noise', data: golden.float32('img2img_noise') });
  for (let i = 0; has(`step${i}_latents`); i++) if (has(`step${i}_noise`)) draws.push({ label: `step${i}_noise`, data: golden.float32(`step${i}_noise`) });
  for (const k of ['decoder_noise0', 'decoder_noise1']) if (has(k)) draws.push({ label: k, data: golden.float32(k) });
  if (shapes) {
    if (shapes.length !== draws.length) throw new CaseFieldError(`recorded_random_draws lists ${shapes.length} draws, the file holds ${draws.length} (${draws.map((d) => d.label).join(', ')})`);
    shapes.forEach((s, i) => {
      if (!sameList(s, golden.info(draws[i].label).shape)) throw new CaseFieldError(`recorded draw ${i} is [${s}], tensor ${draws[i].label} is [${golden.info(draws[i].label).shape}]`);
    });
  }
  const noise = new RecordedNoise(draws);
  const traced = new Map<string, Float32Array | Float64Array>();
  if (opts.latents === undefined && has('latents_init')) opts.latents = golden.float32('latents_init');
  opts.scheduler = schedName;
  opts.schedulerConfig = schedulerConfig;
  opts.noise = noise;
  opts.trace = (name, data) => traced.set(name, data);

  // ---- the run -------------------------------------------------------------------------------
  const src = pipelineSource(modelDir, ctx);
  const pipe = await loadPipeline(src.id, { ...src.options, pipelineClass: cls, vae, loras, strictLoras: true });
  try {
    await pipe.generate(opts);
  } finally {
    pipe.dispose();
  }
  if (noise.remaining) throw new Error(`${noise.remaining} recorded random draws were not used`);

  // ---- what the reference ran, exactly ---------------------------------------------------------
  const plan = traced.get('plan.timesteps');
  if (!plan) throw new Error('the pipeline reported no plan');
  for (const k of ['timesteps_run', 'timesteps']) {
    if (meta[k] === undefined) continue;
    const want = fieldNumbers(meta, k, 'case field');
    if (!sameList(plan, want)) throw new Error(`${k} [${want}] but the pipeline ran [${Array.from(plan)}]`);
  }
  if (meta.num_unet_calls !== undefined && fieldNumber(meta, 'num_unet_calls', 'case field') !== plan.length) throw new Error(`num_unet_calls ${meta.num_unet_calls} but the pipeline called the UNet ${plan.length} times`);
  const sigma = traced.get('plan.init_noise_sigma');
  if (meta.init_noise_sigma !== undefined) {
    const want = fieldNumber(meta, 'init_noise_sigma', 'case field');
    if (!sigma || Math.fround(sigma[0]) !== Math.fround(want)) throw new Error(`init_noise_sigma ${want} but the pipeline used ${sigma?.[0]}`);
  }

  let compared = 0;
  for (const name of golden.names()) {
    const mine = traced.get(name);
    if (!mine) continue;
    cmp.add(name, mine, golden.float32(name));
    compared++;
  }
  for (const must of ['image', 'latents_final', 'latents_start']) if (!traced.has(must) && has(must)) throw new Error(`pipeline produced no ${must}`);
  if (compared < 5) throw new Error(`only ${compared} tensors compared`);
};
