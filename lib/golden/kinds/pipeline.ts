// pipeline goldens: a whole generation with the reference's recorded random draws injected, every
// recorded intermediate (token ids, embeddings, each step's UNet input / output / latents, the
// decoder input, the image) compared with ours. Everything the run needs comes from the case:
// the pipeline class, the scheduler config, every `call` argument (each mapped to a
// GenerateOptions field, or the case fails naming it), the LoRAs fused before the call, the VAE.
import * as path from 'path';
import { type GenerateOptions, type InputImage, type LoadOptions, PIPELINE_CLASSES, type PipelineClass, RecordedNoise, loadPipeline, pipelineClassInfo } from '../../pipelines';
import { type ControlOptions, controlKeep } from '../../pipelines/control';
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

/** What a ControlNet pipeline golden adds (controlnet_pipeline, controlnet/). */
export const CONTROLNET_PIPELINE_FIELDS = [...PIPELINE_FIELDS, 'controlnet', 'control_image', 'controlnet_keep', 'controlnet_scales_run', 'guess_mode', 'num_controlnet_residuals'];

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

/** A call argument given as a tensor of the golden: '<tensor: NAME>', or a PIL image stored as 0..255 floats: '<PIL.Image RGB uint8: NAME>'. */
function tensorRef(golden: SafetensorsFile, v: unknown, k: string): { name: string; shape: number[]; data: Float32Array; pil: boolean } {
  const m = typeof v === 'string' ? /^<(tensor|PIL\.Image RGB uint8): ([\w.]+)>$/.exec(v) : null;
  if (!m) throw new CaseFieldError(`${CALL} '${k}' must name a tensor of the golden ('<tensor: NAME>' or '<PIL.Image RGB uint8: NAME>'), got ${JSON.stringify(v)}`);
  if (!golden.has(m[2])) throw new CaseFieldError(`${CALL} '${k}' names tensor '${m[2]}', which is not in the file`);
  return { name: m[2], shape: golden.info(m[2]).shape, data: golden.float32(m[2]), pil: m[1] !== 'tensor' };
}

/** The image a call argument names: float pixels in [0, 1], or (a PIL image) 8-bit RGB the pipeline resizes as diffusers does. */
function imageArg(golden: SafetensorsFile, v: unknown, k: string): InputImage {
  const t = tensorRef(golden, v, k);
  if (t.shape.length !== 4 || t.shape[0] !== 1 || t.shape[1] !== 3) throw new CaseFieldError(`${CALL} '${k}': tensor '${t.name}' must be [1, 3, H, W], got [${t.shape}]`);
  const [, , H, W] = t.shape;
  if (!t.pil) return { width: W, height: H, pixels: t.data };
  const data = new Uint8Array(H * W * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < H * W; i++) {
      const x = t.data[c * H * W + i];
      if (!(Number.isInteger(x) && x >= 0 && x <= 255)) throw new CaseFieldError(`${CALL} '${k}': tensor '${t.name}' must hold 0..255 integers (a uint8 image)`);
      data[i * 3 + c] = x;
    }
  }
  return { width: W, height: H, data, channels: 3 };
}

/** A ControlNet pipeline call's control arguments, gathered while the call is read (one ControlNet, as the fixtures' pipelines). */
type ControlArgs = Partial<Omit<ControlOptions, 'image'>> & { image?: InputImage };

type CallMapper = (v: unknown, o: GenerateOptions, golden: SafetensorsFile, cls: PipelineClass, control: ControlArgs) => void;

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
  // the init image, or for a ControlNet (text-to-image) pipeline the control image
  image: (v, o, g, cls, c) => {
    if (cls.controlnet && !cls.img2img) c.image = imageArg(g, v, 'image');
    else o.image = imageArg(g, v, 'image');
  },
  control_image: (v, _o, g, cls, c) => {
    if (!cls.controlnet || !cls.img2img) throw new CaseFieldError(`${CALL} 'control_image' needs a ControlNet img2img pipeline`);
    c.image = imageArg(g, v, 'control_image');
  },
  controlnet_conditioning_scale: (v, _o, _g, _cls, c) => void (c.scale = num(v, 'controlnet_conditioning_scale')),
  control_guidance_start: (v, _o, _g, _cls, c) => void (c.start = num(v, 'control_guidance_start')),
  control_guidance_end: (v, _o, _g, _cls, c) => void (c.end = num(v, 'control_guidance_end')),
  guess_mode: (v, _o, _g, _cls, c) => {
    if (typeof v !== 'boolean') throw new CaseFieldError(`${CALL} 'guess_mode' must be true or false`);
    c.guessMode = v;
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
export function callOptions(call: unknown, golden: SafetensorsFile, cls: PipelineClass): GenerateOptions {
  if (!isObject(call)) throw new CaseFieldError(`case field 'call' must be an object of the pipeline's arguments, got ${JSON.stringify(call)}`);
  const unknown = Object.keys(call).filter((k) => !(k in CALL_FIELDS));
  if (unknown.length) throw new CaseFieldError(`${CALL}${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not supported`);
  if (call.prompt === undefined) throw new CaseFieldError(`the call has no prompt`);
  const o = { prompt: '' } as GenerateOptions;
  const c: ControlArgs = {};
  for (const [k, v] of Object.entries(call)) CALL_FIELDS[k](v, o, golden, cls, c);
  if (cls.controlnet) {
    if (!c.image) throw new CaseFieldError('the call gives no control image');
    o.control = { ...c, image: c.image, index: 0 };
  } else if (Object.keys(c).length) {
    throw new CaseFieldError(`ControlNet arguments (${Object.keys(c).join(', ')}) in a call to a pipeline without ControlNet`);
  }
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
  const opts = callOptions(meta.call, golden, entry);
  if (!!entry.controlnet !== (meta.kind === 'controlnet_pipeline')) throw new CaseFieldError(`a ${meta.kind} case cannot run ${cls}`);
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
  let controlnet: string | undefined;
  if (entry.controlnet) {
    if (typeof meta.controlnet !== 'string' || !/^[\w.-]+$/.test(meta.controlnet)) throw new CaseFieldError(`case field 'controlnet' must name a folder under models/, got ${JSON.stringify(meta.controlnet)}`);
    controlnet = path.join(ctx.root, 'models', meta.controlnet);
    const c = opts.control as ControlOptions & { image: InputImage };
    if (meta.guess_mode !== undefined && meta.guess_mode !== (c.guessMode ?? false)) throw new CaseFieldError(`guess_mode ${meta.guess_mode} differs from the call's ${c.guessMode ?? false}`);
    if (isObject(meta.control_image)) {
      const ci = meta.control_image;
      checkFields(ci, ['tensor', 'width', 'height', 'resized_to'], 'control_image field', ['passed_as', 'resample', 'stored_as']);
      if (ci.width !== c.image.width || ci.height !== c.image.height) throw new CaseFieldError(`control_image is ${ci.width}x${ci.height}, the image the call names is ${c.image.width}x${c.image.height}`);
    }
  }

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
  const pipe = await loadPipeline(src.id, { ...src.options, pipelineClass: cls, vae, loras, strictLoras: true, controlnet });
  let residuals: number | undefined;
  try {
    // the down residuals (diffusers counts the mid one apart)
    residuals = pipe.controlNets[0] ? pipe.controlNets[0].numResiduals - 1 : undefined;
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
  if (entry.controlnet) {
    const c = opts.control as ControlOptions;
    const n = plan.length;
    const keep = Array.from({ length: n }, (_, i) => controlKeep(i, n, c.start ?? 0, c.end ?? 1));
    if (meta.controlnet_keep !== undefined && !sameList(keep, fieldNumbers(meta, 'controlnet_keep', 'case field'))) throw new Error(`controlnet_keep [${meta.controlnet_keep}] but the pipeline kept [${keep}]`);
    if (meta.controlnet_scales_run !== undefined) {
      const want = fieldNumbers(meta, 'controlnet_scales_run', 'case field');
      const got = keep.map((k) => (c.scale ?? 1) * k);
      if (!sameList(got, want)) throw new Error(`controlnet_scales_run [${want}] but the pipeline ran [${got}]`);
    }
    if (meta.num_controlnet_residuals !== undefined && meta.num_controlnet_residuals !== residuals) throw new Error(`num_controlnet_residuals ${meta.num_controlnet_residuals}, the ControlNet gives ${residuals}`);
    if (isObject(meta.control_image) && Array.isArray(meta.control_image.resized_to)) {
      const [rh, rw] = meta.control_image.resized_to as number[];
      const cc = traced.get('controlnet_cond');
      if (!cc || cc.length % (3 * rh * rw)) throw new Error(`control_image.resized_to [${rh}, ${rw}] does not match the control image the ControlNet received`);
    }
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
  // every tensor of the golden is an input the run was fed, or compared
  const fed = new Set(['latents_init', 'vae_sample_noise', 'img2img_noise', 'decoder_noise0', 'decoder_noise1', ...draws.map((d) => d.label)]);
  for (const v of Object.values(meta.call as Record<string, unknown>)) {
    const m = typeof v === 'string' ? /^<(?:tensor|PIL\.Image RGB uint8): ([\w.]+)>$/.exec(v) : null;
    if (m) fed.add(m[1]);
  }
  const missed = golden.names().filter((n) => !fed.has(n) && !traced.has(n));
  if (missed.length) throw new Error(`the pipeline produced no ${missed.slice(0, 6).join(', ')}${missed.length > 6 ? ', ...' : ''} (recorded by the golden)`);
  if (compared < 5) throw new Error(`only ${compared} tensors compared`);
};
