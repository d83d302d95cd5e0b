// The HTTP endpoints: the page, /health, /info, POST /generate, OpenAI's /v1/images/generations
// and /v1/models. The server (server.ts) does the checks common to all of them first.
import type { IncomingMessage, ServerResponse } from 'http';
import { AbortError } from '../errors';
import { version } from '../version';
import { readJson } from './body';
import { type ServerError, badRequest, shuttingDown } from './errors';
import { openAIError, openAIResponse, parseOpenAI } from './openai';
import type { ResolvedOptions } from './options';
import { GENERATE_FIELDS, type GenerateParams, asObject, parseGenerate, readString, rejectUnknown } from './params';
import { sendBytes, sendJson } from './respond';
import type { GenerationEvent, GenerationResult, GenerationService } from './service';
import type { StaticFile } from './static';

export interface RouteContext {
  options: ResolvedOptions;
  service: GenerationService;
  files: Map<string, StaticFile>;
  /** true once close() began */
  closing(): boolean;
  /** aborts this request's generation when the server stops waiting for it */
  track(ctrl: AbortController): () => void;
}

export interface Route {
  methods: string[];
  /** needs the API key and a same-origin (or CORS-allowed) browser */
  api: boolean;
  /** errors in OpenAI's shape */
  openai?: boolean;
  handle(ctx: RouteContext, req: IncomingMessage, res: ServerResponse): Promise<void> | void;
}

/** Runs a generation for an HTTP request; the client closing the connection aborts it. */
async function generateFor(ctx: RouteContext, res: ServerResponse, params: GenerateParams, source: GenerationEvent['source']): Promise<GenerationResult> {
  if (ctx.closing()) throw shuttingDown();
  const ctrl = new AbortController();
  const onClose = () => {
    if (!res.writableEnded) ctrl.abort();
  };
  res.on('close', onClose);
  const untrack = ctx.track(ctrl);
  try {
    return await ctx.service.generate(params, { source, signal: ctrl.signal });
  } catch (e) {
    throw e instanceof AbortError && ctx.closing() ? shuttingDown() : e;
  } finally {
    untrack();
    res.off('close', onClose);
  }
}

function modelInfo(ctx: RouteContext) {
  const p = ctx.service.pipeline;
  return { name: p.name, family: p.family, kind: p.kind, defaults: p.defaults, controlnets: [...(p.controlNetNames ?? [])] };
}

const page: Route = {
  methods: ['GET', 'HEAD'],
  api: false,
  handle(ctx, req, res) {
    const f = ctx.files.get(new URL(req.url ?? '/', 'http://x').pathname) as StaticFile;
    sendBytes(res, 200, f.body, f.headers);
  },
};

export const ROUTES: Record<string, Route> = {
  '/': page,
  '/index.html': page,
  '/app.js': page,
  '/style.css': page,

  '/health': {
    methods: ['GET', 'HEAD'],
    api: false,
    handle(ctx, _req, res) {
      const q = ctx.service.queue;
      sendJson(res, ctx.closing() ? 503 : 200, { status: ctx.closing() ? 'shutting-down' : 'ok', queue: { running: q.running, pending: q.pending } });
    },
  },

  '/info': {
    methods: ['GET'],
    api: true,
    handle(ctx, _req, res) {
      const q = ctx.service.queue;
      sendJson(res, 200, {
        server: 'onestep',
        version,
        model: modelInfo(ctx),
        limits: ctx.options.limits,
        queue: { running: q.running, pending: q.pending, max: ctx.options.limits.maxQueue },
        apiKeyRequired: ctx.options.apiKey !== undefined,
      });
    },
  },

  '/generate': {
    methods: ['POST'],
    api: true,
    async handle(ctx, req, res) {
      const body = asObject(await readJson(req, ctx.options.limits.maxBodyBytes));
      rejectUnknown(body, [...GENERATE_FIELDS, 'format']);
      const format = readString(body, 'format', 8) ?? 'json';
      if (format !== 'json' && format !== 'png') throw badRequest(`'format' must be 'json' or 'png', got ${JSON.stringify(format)}`);
      const params = parseGenerate(body, ctx.options.limits);
      if (format === 'png' && (params.batchSize ?? 1) > 1) throw badRequest("'format': 'png' returns one image; use 'json' for a batch");
      const r = await generateFor(ctx, res, params, 'http');
      const timing: Record<string, string> = { 'X-Seed': String(r.seed), 'X-Latency-Ms': r.latencyMs.toFixed(1), 'X-Queue-Ms': r.queueMs.toFixed(1) };
      if (r.warnings.length) timing['X-Onestep-Warnings'] = r.warnings.join(' | ').replace(/[^\x20-\x7e]/g, '?');
      if (format === 'png') {
        sendBytes(res, 200, r.images[0].png, { 'Content-Type': 'image/png', 'Cache-Control': 'no-store', ...timing });
        return;
      }
      const images = r.images.map((i) => ({ b64_png: i.png.toString('base64'), width: i.width, height: i.height }));
      sendJson(res, 200, { images, seed: r.seed, latencyMs: r.latencyMs, queueMs: r.queueMs, warnings: r.warnings }, timing);
    },
  },

  '/v1/images/generations': {
    methods: ['POST'],
    api: true,
    openai: true,
    async handle(ctx, req, res) {
      const { params, responseFormat } = parseOpenAI(await readJson(req, ctx.options.limits.maxBodyBytes), ctx.options.limits);
      const r = await generateFor(ctx, res, params, 'openai');
      sendJson(res, 200, openAIResponse(r, responseFormat));
    },
  },

  '/v1/models': {
    methods: ['GET'],
    api: true,
    openai: true,
    handle(ctx, _req, res) {
      sendJson(res, 200, { object: 'list', data: [{ id: ctx.service.pipeline.name, object: 'model', created: 0, owned_by: 'onestep' }] });
    },
  },
};

export const openAIShape = (e: ServerError) => openAIError(e.code, e.message, e.status);
