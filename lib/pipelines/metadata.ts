// What made an image, written into its PNG so it can be reproduced: the `parameters` text chunk
// in the form the common Stable Diffusion web UIs write and read (AUTOMATIC1111's infotext: the
// prompt, a "Negative prompt:" line, then "Key: value" pairs), and an `onestep` chunk with the
// same facts as JSON (exact: seeds as decimal strings, the sampler by our name).
import { ArgumentError } from '../errors';
import { readTextChunks } from './png';

export interface GenerationParams {
  prompt: string;
  negativePrompt?: string;
  /** the step count asked for (img2img runs int(steps * strength) of them) */
  steps: number;
  /** onestep's scheduler name: euler_a, euler, lcm, tcd, ddim, flow */
  sampler: string;
  guidanceScale: number;
  /** decimal, 0..2^64-1 (torch.Generator('cpu').manual_seed(seed) gives the same latents); absent when the noise was given */
  seed?: string;
  /** randn's float32 variant (docs/RNG.md) */
  rngVariant: string;
  width: number;
  height: number;
  model: string;
  loras: { name: string; scale: number }[];
  /** img2img */
  strength?: number;
  eta?: number;
  timesteps?: number[];
  /** the ControlNets of the call (name as loaded, scale, guidance window, guess mode) */
  controlnets?: { name: string; scale: number; start: number; end: number; guessMode: boolean }[];
  /** the batch the image was drawn in (one generator for the whole batch, as diffusers) */
  batchSize: number;
  batchIndex: number;
  /** the CPU's GEMM arithmetic where it was not fp32 ('bf16': the image differs slightly from fp32's) */
  precision?: string;
  /** e.g. 'onestep 0.1.0' */
  version: string;
}

/** The names the web UIs give our samplers. */
const SAMPLER_NAMES: Record<string, string> = { euler_a: 'Euler a', euler: 'Euler', lcm: 'LCM', tcd: 'TCD', ddim: 'DDIM', flow: 'Rectified flow' };

/** A value in infotext: quoted (JSON) when it holds a comma, colon or quote, as the web UIs do. */
function infoValue(v: string | number): string {
  const s = String(v);
  return /[,:"\n]/.test(s) ? JSON.stringify(s) : s;
}

/** The `parameters` text (AUTOMATIC1111 infotext). */
export function formatParameters(p: GenerationParams): string {
  const pairs: [string, string | number][] = [
    ['Steps', p.steps],
    ['Sampler', SAMPLER_NAMES[p.sampler] ?? p.sampler],
    ['CFG scale', p.guidanceScale],
  ];
  if (p.seed !== undefined) pairs.push(['Seed', p.seed]);
  pairs.push(['Size', `${p.width}x${p.height}`], ['Model', p.model]);
  if (p.strength !== undefined) pairs.push(['Denoising strength', p.strength]);
  if (p.eta !== undefined) pairs.push(['Eta', p.eta]);
  if (p.timesteps) pairs.push(['Timesteps', p.timesteps.join(' ')]);
  if (p.loras.length) pairs.push(['Lora', p.loras.map((l) => `${l.name}: ${l.scale}`).join(', ')]);
  // as the web UIs' ControlNet extension writes it: one "ControlNet i" entry per unit
  (p.controlnets ?? []).forEach((c, i) => pairs.push([`ControlNet ${i}`, `Model: ${c.name}, Weight: ${c.scale}, Guidance Start: ${c.start}, Guidance End: ${c.end}${c.guessMode ? ', Control Mode: guess' : ''}`]));
  if (p.batchSize > 1) pairs.push(['Batch size', p.batchSize], ['Batch pos', p.batchIndex]);
  if (p.precision) pairs.push(['Precision', p.precision]);
  pairs.push(['RNG', 'CPU'], ['Version', p.version]);
  const lines = [p.prompt];
  if (p.negativePrompt) lines.push(`Negative prompt: ${p.negativePrompt}`);
  lines.push(pairs.map(([k, v]) => `${k}: ${infoValue(v)}`).join(', '));
  return lines.join('\n');
}

/** Parses infotext: the prompt, the negative prompt and the "Key: value" pairs of its last line. */
export function parseParameters(text: string): { prompt: string; negativePrompt?: string; values: Record<string, string> } {
  const lines = text.split('\n');
  let last = lines.length - 1;
  const values: Record<string, string> = {};
  const pair = /\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)/g;
  const lastLine = lines[last] ?? '';
  if (/^\s*Steps: /.test(lastLine)) {
    for (const m of lastLine.matchAll(pair)) {
      const v = m[2].trim();
      values[m[1].trim()] = v.startsWith('"') ? (JSON.parse(v) as string) : v;
    }
  } else {
    last = lines.length;
  }
  const body = lines.slice(0, last);
  const neg = body.findIndex((l) => l.startsWith('Negative prompt:'));
  const prompt = (neg < 0 ? body : body.slice(0, neg)).join('\n');
  const negativePrompt = neg < 0 ? undefined : body.slice(neg).join('\n').slice('Negative prompt:'.length).trim();
  return { prompt, negativePrompt, values };
}

export interface ImageMetadata {
  /** the `parameters` infotext, if any */
  parameters?: string;
  /** onestep's own record, if the image was made by onestep */
  onestep?: GenerationParams;
  /** every text chunk */
  text: Record<string, string>;
}

/** The generation metadata of a PNG (bytes): any tool's `parameters`, and onestep's own record. */
export function readImageMetadata(png: Uint8Array, what = 'the image'): ImageMetadata {
  const text = readTextChunks(png, what);
  let onestep: GenerationParams | undefined;
  if (text.onestep !== undefined) {
    try {
      onestep = JSON.parse(text.onestep) as GenerationParams;
    } catch {
      throw new ArgumentError(`${what}: its onestep metadata chunk is not JSON`);
    }
  }
  return { parameters: text.parameters, onestep, text };
}

/** The text chunks an image's PNG carries. */
export function metadataChunks(p: GenerationParams): Record<string, string> {
  return { parameters: formatParameters(p), onestep: JSON.stringify(p) };
}
