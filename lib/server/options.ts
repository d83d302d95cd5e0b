// Server options and limits, with safe defaults (loopback only, bounded everything).
import { ArgumentError } from '../errors';
import type { Pipeline } from '../pipelines';

/** What the server needs of a pipeline (a loaded Pipeline; tests may wrap one). */
export type ServedPipeline = Pick<Pipeline, 'generate' | 'name' | 'family' | 'kind' | 'defaults'> & Partial<Pick<Pipeline, 'controlNetNames'>>;

export interface ServerLimits {
  /** largest width / height in pixels */
  maxWidth: number;
  maxHeight: number;
  /** most denoising steps per request */
  maxSteps: number;
  /** most images per request (batchSize, OpenAI's n) */
  maxBatch: number;
  /** largest request body / WebSocket message in bytes (an img2img PNG travels in base64 inside it) */
  maxBodyBytes: number;
  /** most generations waiting in the queue (the running one not counted); more get 503 */
  maxQueue: number;
  /** longest prompt / negative prompt in characters */
  maxPromptLength: number;
  /** most open WebSocket sessions */
  maxConnections: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxWidth: 1024,
  maxHeight: 1024,
  maxSteps: 50,
  maxBatch: 4,
  maxBodyBytes: 8 * 1024 * 1024,
  maxQueue: 8,
  maxPromptLength: 2000,
  maxConnections: 32,
});

export interface ServerOptions {
  pipeline: ServedPipeline;
  /** address to listen on (default 127.0.0.1: this machine only) */
  host?: string;
  /** port (default 8787; 0 picks a free one) */
  port?: number;
  /** when set, every API call needs it ('Authorization: Bearer KEY', 'X-API-Key', or ?key= on the WebSocket) */
  apiKey?: string;
  limits?: Partial<ServerLimits>;
  /** browser origins allowed to call the API from other pages ('*' for any); default none */
  corsOrigins?: string[];
  /** extra Host header names to accept when listening on loopback (DNS-rebinding guard) */
  allowedHosts?: string[];
  /** how long close() lets running HTTP generations finish before aborting them (default 10 s) */
  shutdownGraceMs?: number;
  /** dispose the pipeline when the server closes (serve() sets it) */
  ownsPipeline?: boolean;
}

export interface ResolvedOptions {
  pipeline: ServedPipeline;
  host: string;
  port: number;
  apiKey: string | undefined;
  limits: ServerLimits;
  corsOrigins: string[];
  allowedHosts: string[];
  shutdownGraceMs: number;
  ownsPipeline: boolean;
}

export const DEFAULT_PORT = 8787;

export function resolveOptions(o: ServerOptions): ResolvedOptions {
  if (!o || typeof o !== 'object') throw new ArgumentError('createServer needs an options object with a pipeline');
  const p = o.pipeline as Partial<ServedPipeline> | undefined;
  if (!p || typeof p.generate !== 'function') throw new ArgumentError('createServer: options.pipeline must be a loaded Pipeline (see loadPipeline)');
  return { ...resolveSettings(o), pipeline: o.pipeline };
}

/** Every server option but the pipeline, checked (serve() checks them before loading the model). */
export function resolveSettings(o: Omit<ServerOptions, 'pipeline'>): Omit<ResolvedOptions, 'pipeline'> {
  if (!o || typeof o !== 'object') throw new ArgumentError('server options must be an object');
  const port = o.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ArgumentError(`port must be an integer in 0..65535, got ${o.port}`);
  if (o.apiKey !== undefined && (typeof o.apiKey !== 'string' || o.apiKey.length < 8)) throw new ArgumentError('apiKey must be a string of at least 8 characters');
  const limits: ServerLimits = { ...DEFAULT_LIMITS };
  for (const [k, v] of Object.entries(o.limits ?? {})) {
    if (!(k in DEFAULT_LIMITS)) throw new ArgumentError(`unknown limit '${k}' (known: ${Object.keys(DEFAULT_LIMITS).join(', ')})`);
    if (v === undefined) continue;
    const min = k === 'maxQueue' ? 0 : 1;
    if (!Number.isInteger(v) || v < min) throw new ArgumentError(`limit ${k} must be an integer >= ${min}, got ${v}`);
    limits[k as keyof ServerLimits] = v;
  }
  const grace = o.shutdownGraceMs ?? 10_000;
  if (!Number.isFinite(grace) || grace < 0) throw new ArgumentError(`shutdownGraceMs must be >= 0, got ${o.shutdownGraceMs}`);
  const strings = (v: unknown, what: string): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) throw new ArgumentError(`${what} must be an array of non-empty strings`);
    return v as string[];
  };
  if (o.host !== undefined && (typeof o.host !== 'string' || o.host === '')) throw new ArgumentError(`host must be a non-empty string, got ${JSON.stringify(o.host)}`);
  return {
    host: o.host ?? '127.0.0.1',
    port,
    apiKey: o.apiKey,
    limits,
    corsOrigins: strings(o.corsOrigins, 'corsOrigins'),
    allowedHosts: strings(o.allowedHosts, 'allowedHosts').map((h) => h.toLowerCase()),
    shutdownGraceMs: grace,
    ownsPipeline: !!o.ownsPipeline,
  };
}
