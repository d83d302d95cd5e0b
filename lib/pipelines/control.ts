// ControlNet in the pipelines, as diffusers' StableDiffusion(XL)ControlNetPipeline and its
// MultiControlNet do it: each control image preprocessed (resized with PIL LANCZOS to the output
// size, [0, 1], no normalisation), batched like the latents ([uncond; cond] under guidance unless
// guess mode), a per-step scale of conditioning_scale * keep (keep = 0 outside
// [control_guidance_start, control_guidance_end]), guess mode's logspace factors and conditional-
// half batching, and the residuals of several ControlNets summed.
import { ArgumentError, ConfigError } from '../errors';
import { type ControlNetModel, residualScales } from '../models/controlnet/controlnet';
import type { UNet2DConditionModel } from '../models/unet/unet';
import { type InputImage, fitImage, readPng } from './image';

export interface ControlOptions {
  /** the control image: a PNG path, PNG bytes, 8-bit pixels, or float pixels [3, H, W] already in [0, 1] */
  image: string | Uint8Array | InputImage;
  /** which of the pipeline's ControlNets (pipe.controlNets, in load order); default 0 */
  index?: number;
  /** or the ControlNet itself (one the pipeline loaded: loadPipeline({ controlnet }) or pipe.loadControlNet) */
  model?: ControlNetModel;
  /** controlnet_conditioning_scale, in [0, 10]; default 1 */
  scale?: number;
  /** control_guidance_start / _end: the fraction of the steps it acts on; default 0 and 1 */
  start?: number;
  end?: number;
  /**
   * diffusers' guess_mode: the residuals scaled by logspace(-1, 0) and, under guidance, the
   * ControlNet sees only the conditional half. One setting for all ControlNets of a call.
   */
  guessMode?: boolean;
}

export interface PreparedControl {
  model: ControlNetModel;
  /** position in the pipeline's list (graph keys) */
  slot: number;
  /** the preprocessed image [3, H, W] in [0, 1] (one, before batching) */
  image: Float32Array;
  scale: number;
  start: number;
  end: number;
  guessMode: boolean;
}

/** Checks that a ControlNet was made for this UNet (same encoder widths, cross-attention, added conditioning). */
export function checkControlNetFits(cn: ControlNetModel, unet: UNet2DConditionModel, label: string): void {
  const a = cn.config;
  const u = unet.config;
  const problems: string[] = [];
  if (a.blockOutChannels.join() !== u.blockOutChannels.join()) problems.push(`block_out_channels [${a.blockOutChannels}] vs the UNet's [${u.blockOutChannels}]`);
  if (a.layersPerBlock.join() !== u.layersPerBlock.join()) problems.push(`layers_per_block [${a.layersPerBlock}] vs [${u.layersPerBlock}]`);
  if (a.crossAttentionDim !== u.crossAttentionDim) problems.push(`cross_attention_dim ${a.crossAttentionDim} vs ${u.crossAttentionDim}`);
  if (a.inChannels !== u.inChannels) problems.push(`in_channels ${a.inChannels} vs ${u.inChannels}`);
  if (!!a.textTime !== !!u.textTime) problems.push(a.textTime ? 'it is an SDXL ControlNet, the model is not' : 'the model is SDXL, the ControlNet is not');
  if (problems.length) throw new ConfigError(`ControlNet ${label} is for another model: ${problems.join('; ')}`);
}

/** The control image as float32 [3, H, W] in [0, 1] at width x height (diffusers' control image processor). */
export function controlImage(source: ControlOptions['image'], width: number, height: number): Float32Array {
  const img = typeof source === 'string' || source instanceof Uint8Array ? readPng(source) : source;
  const fitted = fitImage(img, width, height, true);
  const plane = width * height;
  if (fitted.pixels) {
    if (fitted.pixels.length !== 3 * plane) throw new ArgumentError(`control image pixels hold ${fitted.pixels.length} values for 3x${height}x${width}`);
    return Float32Array.from(fitted.pixels);
  }
  const data = fitted.data as Uint8Array;
  const ch = fitted.channels ?? (data.length === plane * 4 ? 4 : 3);
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[c * plane + i] = Math.fround(data[i * ch + c] / 255);
  return out;
}

/** The size of a control image (for the output size when none is given). */
export function controlImageSize(source: ControlOptions['image']): { width: number; height: number } {
  const img = typeof source === 'string' || source instanceof Uint8Array ? readPng(source) : source;
  return { width: img.width, height: img.height };
}

/** Validates a call's control options against the pipeline's ControlNets (before any work). */
export function resolveControls(control: ControlOptions | ControlOptions[] | undefined, loaded: readonly ControlNetModel[]): Omit<PreparedControl, 'image'>[] {
  if (control === undefined) return [];
  const list = Array.isArray(control) ? control : [control];
  if (list.length === 0) return [];
  const out = list.map((c, i) => {
    const what = list.length > 1 ? `control[${i}]` : 'control';
    if (!c || typeof c !== 'object') throw new ArgumentError(`${what} must be an object with an image`);
    if (c.image === undefined) throw new ArgumentError(`${what}.image is required`);
    if (!loaded.length) throw new ArgumentError(`${what}: this pipeline has no ControlNet (loadPipeline(model, { controlnet }) or pipe.loadControlNet(dir))`);
    let slot: number;
    if (c.model !== undefined) {
      slot = loaded.indexOf(c.model);
      if (slot < 0) throw new ArgumentError(`${what}.model is not one of this pipeline's ControlNets (load it with pipe.loadControlNet)`);
      if (c.index !== undefined && c.index !== slot) throw new ArgumentError(`${what}: index ${c.index} and model disagree`);
    } else {
      slot = c.index ?? 0;
      if (!Number.isInteger(slot) || slot < 0 || slot >= loaded.length) throw new ArgumentError(`${what}.index must be an integer in 0..${loaded.length - 1}, got ${c.index}`);
    }
    const scale = c.scale ?? 1;
    if (!Number.isFinite(scale) || scale < 0 || scale > 10) throw new ArgumentError(`${what}.scale must be in [0, 10], got ${c.scale}`);
    const start = c.start ?? 0;
    const end = c.end ?? 1;
    if (!(Number.isFinite(start) && start >= 0 && start <= 1)) throw new ArgumentError(`${what}.start must be in [0, 1], got ${c.start}`);
    if (!(Number.isFinite(end) && end >= 0 && end <= 1)) throw new ArgumentError(`${what}.end must be in [0, 1], got ${c.end}`);
    if (start >= end) throw new ArgumentError(`${what}: start ${start} must be below end ${end}`);
    if (c.guessMode !== undefined && typeof c.guessMode !== 'boolean') throw new ArgumentError(`${what}.guessMode must be true or false`);
    return { model: loaded[slot], slot, scale, start, end, guessMode: !!c.guessMode };
  });
  if (new Set(out.map((c) => c.guessMode)).size > 1) throw new ArgumentError('guessMode must be the same for every ControlNet of a call (diffusers has one guess_mode)');
  return out;
}

/** diffusers' controlnet_keep for step i of n: 0 outside [start, end], else 1. */
export function controlKeep(i: number, n: number, start: number, end: number): number {
  return i / n < start || (i + 1) / n > end ? 0 : 1;
}

/** The per-residual factors of a control at step i of n (0 outside its window). */
export function stepScales(c: Omit<PreparedControl, 'image'>, i: number, n: number): { keep: number; scale: number; factors: Float32Array } {
  const keep = controlKeep(i, n, c.start, c.end);
  const scale = c.scale * keep;
  return { keep, scale, factors: residualScales(c.model.numResiduals, scale, c.guessMode) };
}

/**
 * `FILE[:MODEL][:SCALE]`, as the CLIs take control images: a number after the last ':' is the
 * scale; the image is the longest prefix that is an existing file (so a Windows drive letter or a
 * ':' in a path stays in it); what follows it is the ControlNet (a folder or a repo id).
 */
export function parseControlArg(v: string, exists: (p: string) => boolean): { image: string; model?: string; scale?: number } {
  const parts = v.split(':');
  let scale: number | undefined;
  if (parts.length > 1 && /^[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$/i.test(parts[parts.length - 1])) {
    scale = Number(parts.pop());
  }
  for (let i = parts.length; i >= 1; i--) {
    const image = parts.slice(0, i).join(':');
    if (image && exists(image)) {
      const model = parts.slice(i).join(':');
      return { image, model: model || undefined, scale };
    }
  }
  throw new ArgumentError(`--control ${v}: no control image file found (give FILE[:CONTROLNET][:SCALE])`);
}
