// The one path from a validated request to PNG bytes: the bounded queue, the pipeline call with
// the request's AbortSignal, timing, and one 'generation' event per request (done, aborted, error).
import { randomInt } from 'crypto';
import { EventEmitter } from 'events';
import type { ProgressEvent } from '../pipelines';
import { toServerError } from './errors';
import type { ServedPipeline } from './options';
import type { GenerateParams } from './params';
import { JobQueue } from './queue';

export interface GeneratedPng {
  png: Buffer;
  width: number;
  height: number;
}

export interface GenerationResult {
  images: GeneratedPng[];
  /** the seed used (drawn by the server when the request gave none); a string above 2^53 */
  seed: number | string;
  /** time spent generating (queue wait not included) */
  latencyMs: number;
  /** time spent waiting in the queue */
  queueMs: number;
  /** what the generation warned about (e.g. prompt tokens past the text encoder's window) */
  warnings: string[];
}

export type GenerationOutcome = 'done' | 'aborted' | 'error';

/** Emitted once per generation request that reached the queue (or was refused by it). */
export interface GenerationEvent {
  source: 'http' | 'openai' | 'ws';
  outcome: GenerationOutcome;
  /** the request never ran: refused by a full queue or aborted while waiting */
  started: boolean;
  queueMs: number;
  latencyMs: number;
  error?: { code: string; message: string; status: number };
}

export interface RunOptions {
  source: GenerationEvent['source'];
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
}

export class GenerationService extends EventEmitter {
  readonly queue: JobQueue;

  constructor(
    readonly pipeline: ServedPipeline,
    maxQueue: number,
  ) {
    super();
    this.queue = new JobQueue(maxQueue);
  }

  async generate(params: GenerateParams, o: RunOptions): Promise<GenerationResult> {
    const seed = params.seed ?? randomInt(0, 2 ** 32);
    const queuedAt = performance.now();
    let startedAt = 0;
    const event = (outcome: GenerationOutcome, error?: unknown) => {
      const now = performance.now();
      const e = error === undefined ? undefined : toServerError(error);
      const ev: GenerationEvent = {
        source: o.source,
        outcome,
        started: startedAt > 0,
        queueMs: (startedAt || now) - queuedAt,
        latencyMs: startedAt ? now - startedAt : 0,
        error: e && { code: e.code, message: e.message, status: e.status },
      };
      this.emit('generation', ev);
    };
    try {
      const result = await this.queue.run(async () => {
        startedAt = performance.now();
        const images = await this.pipeline.generate({ ...params, seed, signal: o.signal, onProgress: o.onProgress });
        const pngs = images.map((img) => ({ png: img.png(), width: img.width, height: img.height }));
        const warnings = [...(images[0]?.warnings ?? [])];
        return { images: pngs, seed: typeof seed === 'bigint' && seed > BigInt(Number.MAX_SAFE_INTEGER) ? seed.toString() : Number(seed), latencyMs: performance.now() - startedAt, queueMs: startedAt - queuedAt, warnings };
      }, o.signal);
      event('done');
      return result;
    } catch (e) {
      event(o.signal?.aborted ? 'aborted' : 'error', e);
      throw e;
    }
  }
}
