// Request fields -> validated generation parameters. Shared by the JSON endpoint, the OpenAI
// endpoint and the WebSocket channel; every violation is a 400 that names the field.
import { generationSeed } from '../pipelines/pipeline';
import type { Seed } from '../rng';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers';
import { badRequest, overLimit } from './errors';
import type { ServerLimits } from './options';

/** What a request may ask of one generation (the pipeline's GenerateOptions, bounded). */
export interface GenerateParams {
  prompt: string;
  negativePrompt?: string;
  seed?: Seed;
  steps?: number;
  width?: number;
  height?: number;
  guidanceScale?: number;
  batchSize?: number;
  /** img2img input, PNG bytes (dimensions already checked against the limits) */
  image?: Uint8Array;
  strength?: number;
  scheduler?: SchedulerName;
  /** ControlNet: control images (PNG bytes) for the server's ControlNets */
  control?: ControlParams[];
}

export interface ControlParams {
  image: Uint8Array;
  index?: number;
  scale?: number;
  start?: number;
  end?: number;
  guessMode?: boolean;
}

/** The most control images one request may carry. */
export const MAX_CONTROLS = 4;

/** `control`: one object, or a list, of { image (PNG base64 / data URL), index, scale, start, end, guessMode }. */
function readControls(o: Record<string, unknown>, limits: ServerLimits): ControlParams[] | undefined {
  const v = o.control;
  if (v === undefined || v === null) return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) return undefined;
  if (list.length > MAX_CONTROLS) throw overLimit(`'control' holds ${list.length} control images; the limit is ${MAX_CONTROLS}`);
  return list.map((x, i) => {
    const what = Array.isArray(v) ? `control[${i}]` : 'control';
    const c = asObject(x, `'${what}'`);
    for (const k of Object.keys(c)) if (!['image', 'index', 'scale', 'start', 'end', 'guessMode'].includes(k)) throw badRequest(`unknown field '${what}.${k}' (known: image, index, scale, start, end, guessMode)`);
    const image = readPng(c, 'image', limits);
    if (!image) throw badRequest(`'${what}.image' is required (a PNG, base64 or a data URL)`);
    const guess = c.guessMode;
    if (guess !== undefined && typeof guess !== 'boolean') throw badRequest(`'${what}.guessMode' must be true or false`);
    return { image, index: readInt(c, 'index', 0, 64), scale: readNumber(c, 'scale', 0, 10), start: readNumber(c, 'start', 0, 1), end: readNumber(c, 'end', 0, 1), guessMode: guess as boolean | undefined };
  });
}

/** The JSON fields of a generate request (the WebSocket adds `type` and `id`, the HTTP endpoint `format`). */
export const GENERATE_FIELDS = ['prompt', 'negativePrompt', 'seed', 'steps', 'width', 'height', 'guidanceScale', 'batchSize', 'image', 'strength', 'scheduler', 'control'] as const;

const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

export function asObject(v: unknown, what = 'the request body'): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest(`${what} must be a JSON object, got ${typeName(v)}`);
  return v as Record<string, unknown>;
}

export function rejectUnknown(o: Record<string, unknown>, known: readonly string[]): void {
  for (const k of Object.keys(o)) if (!known.includes(k)) throw badRequest(`unknown field '${k}' (known: ${known.join(', ')})`);
}

export function readString(o: Record<string, unknown>, k: string, maxLength: number, required = false): string | undefined {
  const v = o[k];
  if (v === undefined || (v === null && !required)) {
    if (required) throw badRequest(`'${k}' is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw badRequest(`'${k}' must be a string, got ${typeName(v)}`);
  if (v.length > maxLength) throw overLimit(`'${k}' is ${v.length} characters; the limit is ${maxLength}`);
  return v;
}

export function readInt(o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v)) throw badRequest(`'${k}' must be an integer, got ${typeName(v) === 'number' ? v : typeName(v)}`);
  if (v < min) throw badRequest(`'${k}' must be at least ${min}, got ${v}`);
  if (v > max) throw overLimit(`'${k}' is ${v}; the limit is ${max}`);
  return v;
}

export function readNumber(o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`'${k}' must be a number, got ${typeName(v)}`);
  if (v < min || v > max) throw badRequest(`'${k}' must be in [${min}, ${max}], got ${v}`);
  return v;
}


/**
 * A seed: the pipelines' one rule (0..2^64-1; omitted: a random one), as a JSON number up to
 * 2^53-1 or a decimal string above.
 */
export function readSeed(o: Record<string, unknown>, k: string): Seed | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' && typeof v !== 'string') throw badRequest(`'${k}' must be an integer in 0..2^64-1 (a number, or a decimal string above 2^53-1), got ${typeName(v)}`);
  try {
    const s = generationSeed(v);
    return s <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(s) : s;
  } catch (e) {
    throw badRequest(`'${k}': ${(e as Error).message}`);
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * An img2img input: a PNG as base64 or a data URL (data:image/png;base64,...). Its header's size
 * is checked against the limits before anything decodes it (no decompression bombs).
 */
export function readPng(o: Record<string, unknown>, k: string, limits: ServerLimits): Uint8Array | undefined {
  const v = readString(o, k, Infinity);
  if (v === undefined) return undefined;
  const m = /^data:([^;,]*)(;base64)?,/.exec(v);
  if (m && (m[1] !== 'image/png' || !m[2])) throw badRequest(`'${k}' must be a PNG (data:image/png;base64,...), got a data URL of '${m[1] || 'text/plain'}'`);
  const b64 = m ? v.slice(m[0].length) : v;
  if (!/^[A-Za-z0-9+/\r\n]*={0,2}\s*$/.test(b64)) throw badRequest(`'${k}' must be base64 (or a data:image/png;base64 URL)`);
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE) || bytes.toString('latin1', 12, 16) !== 'IHDR') throw badRequest(`'${k}' is not a PNG image`);
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  if (width < 1 || height < 1) throw badRequest(`'${k}': the PNG is ${width}x${height}`);
  if (width > limits.maxWidth || height > limits.maxHeight) throw overLimit(`'${k}' is ${width}x${height}; the limit is ${limits.maxWidth}x${limits.maxHeight}`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The fields of GENERATE_FIELDS in `o` as bounded generation parameters. */
export function parseGenerate(o: Record<string, unknown>, limits: ServerLimits): GenerateParams {
  const scheduler = readString(o, 'scheduler', 32);
  if (scheduler !== undefined && !(SCHEDULER_NAMES as string[]).includes(scheduler)) throw badRequest(`'scheduler' must be one of ${SCHEDULER_NAMES.join(', ')}, got ${JSON.stringify(scheduler)}`);
  const p: GenerateParams = {
    prompt: readString(o, 'prompt', limits.maxPromptLength, true) as string,
    negativePrompt: readString(o, 'negativePrompt', limits.maxPromptLength),
    seed: readSeed(o, 'seed'),
    steps: readInt(o, 'steps', 1, limits.maxSteps),
    width: readInt(o, 'width', 8, limits.maxWidth),
    height: readInt(o, 'height', 8, limits.maxHeight),
    guidanceScale: readNumber(o, 'guidanceScale', 0, 100),
    batchSize: readInt(o, 'batchSize', 1, limits.maxBatch),
    image: readPng(o, 'image', limits),
    strength: readNumber(o, 'strength', 0, 1),
    scheduler: scheduler as SchedulerName | undefined,
    control: readControls(o, limits),
  };
  if (p.strength !== undefined && !p.image) throw badRequest("'strength' needs an 'image' (img2img)");
  if (p.strength === 0) throw badRequest("'strength' must be in (0, 1]");
  return p;
}
