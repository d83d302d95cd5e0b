// POST /v1/images/generations in OpenAI's shape, so existing clients work: prompt, n, size,
// response_format ('b64_json' default, or 'url' answered with a data: URL), model and the
// other OpenAI fields accepted and ignored; seed, steps, negative_prompt, guidance_scale added.
import { badRequest } from './errors';
import type { ServerLimits } from './options';
import { type GenerateParams, asObject, readInt, readNumber, readSeed, readString } from './params';
import type { GenerationResult } from './service';

export interface OpenAIRequest {
  params: GenerateParams;
  responseFormat: 'b64_json' | 'url';
}

/** OpenAI fields that make no difference here (taken so clients that send them work). */
const IGNORED = ['model', 'quality', 'style', 'user', 'background', 'moderation', 'output_compression', 'partial_images', 'stream'];

export function parseOpenAI(body: unknown, limits: ServerLimits): OpenAIRequest {
  const o = asObject(body);
  const known = ['prompt', 'n', 'size', 'response_format', 'output_format', 'seed', 'steps', 'negative_prompt', 'guidance_scale', ...IGNORED];
  for (const k of Object.keys(o)) if (!known.includes(k)) throw badRequest(`unknown field '${k}'`);
  const rf = readString(o, 'response_format', 16) ?? 'b64_json';
  if (rf !== 'b64_json' && rf !== 'url') throw badRequest(`'response_format' must be 'b64_json' or 'url', got ${JSON.stringify(rf)}`);
  const of = readString(o, 'output_format', 8);
  if (of !== undefined && of !== 'png') throw badRequest(`'output_format' must be 'png' (the only format served), got ${JSON.stringify(of)}`);
  if (o.stream === true) throw badRequest("'stream' is not supported; use the WebSocket channel (/ws) for real-time use");
  const size = readString(o, 'size', 16);
  let width: number | undefined;
  let height: number | undefined;
  if (size !== undefined && size !== 'auto') {
    const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
    if (!m) throw badRequest(`'size' must be 'WIDTHxHEIGHT' (e.g. '512x512') or 'auto', got ${JSON.stringify(size)}`);
    const dims = { width: Number(m[1]), height: Number(m[2]) };
    width = readInt(dims, 'width', 8, limits.maxWidth);
    height = readInt(dims, 'height', 8, limits.maxHeight);
  }
  return {
    responseFormat: rf,
    params: {
      prompt: readString(o, 'prompt', limits.maxPromptLength, true) as string,
      negativePrompt: readString(o, 'negative_prompt', limits.maxPromptLength),
      batchSize: readInt(o, 'n', 1, limits.maxBatch),
      width,
      height,
      seed: readSeed(o, 'seed'),
      steps: readInt(o, 'steps', 1, limits.maxSteps),
      guidanceScale: readNumber(o, 'guidance_scale', 0, 100),
    },
  };
}

export function openAIResponse(r: GenerationResult, format: OpenAIRequest['responseFormat']): object {
  return {
    created: Math.floor(Date.now() / 1000),
    data: r.images.map((img) => (format === 'url' ? { url: `data:image/png;base64,${img.png.toString('base64')}` } : { b64_json: img.png.toString('base64') })),
    ...(r.warnings.length ? { warnings: r.warnings } : {}),
  };
}

/** OpenAI's error shape: { error: { message, type, param, code } } (ours plus type and param). */
export function openAIError(code: string, message: string, status: number): object {
  return { error: { code, message, type: status >= 500 ? 'server_error' : 'invalid_request_error', param: null } };
}
