// A graph description that can pause between its parts: a generator that `yield`s where the event
// loop may run (between a network's blocks). Run it through at once (describeNow), or with the
// event loop running between parts (describeYielding), so that describing a large network never
// holds the JS thread for long.

import { DisposedError } from '../errors';

export type Description<T> = Generator<void, T, void>;

export function describeNow<T>(d: Description<T>): T {
  for (;;) {
    const r = d.next();
    if (r.done) return r.value;
  }
}

/** Lets the event loop run (timers, I/O, other requests) before the caller goes on. */
export const yieldToLoop = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export async function describeYielding<T>(d: Description<T>): Promise<T> {
  for (;;) {
    const r = d.next();
    if (r.done) return r.value;
    await yieldToLoop();
  }
}

interface Disposable {
  dispose(): void;
}

/**
 * A model's compiled graphs by key (shape and outputs), each described once: at once (`get`, for
 * callers that need a graph synchronously) or with the event loop running between the
 * description's parts (`getYielding`, what a generation uses). Concurrent yielding requests for
 * one key share one description; a graph described while the cache was cleared (weights changed
 * under it) is dropped and described again.
 */
export class GraphCache<G extends Disposable> {
  private readonly graphs = new Map<string, G>();
  private readonly pending = new Map<string, Promise<G>>();
  private epoch = 0;
  private closed = false;

  constructor(private readonly label: string) {}

  get(key: string, describe: () => Description<G>): G {
    this.checkOpen();
    let g = this.graphs.get(key);
    if (!g) {
      g = describeNow(describe());
      this.graphs.set(key, g);
    }
    return g;
  }

  getYielding(key: string, describe: () => Description<G>): Promise<G> {
    if (this.closed) return Promise.reject(this.disposedError());
    const g = this.graphs.get(key);
    if (g) return Promise.resolve(g);
    let p = this.pending.get(key);
    if (!p) {
      p = this.describeYielding(key, describe).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async describeYielding(key: string, describe: () => Description<G>): Promise<G> {
    for (;;) {
      const epoch = this.epoch;
      const g = await describeYielding(describe());
      if (this.closed) {
        g.dispose();
        this.checkOpen();
      }
      const current = this.graphs.get(key);
      if (current) {
        // described synchronously meanwhile
        g.dispose();
        return current;
      }
      if (epoch === this.epoch) {
        this.graphs.set(key, g);
        return g;
      }
      g.dispose();
    }
  }

  /** How many graphs are kept (descriptions under way not counted). */
  get size(): number {
    return this.graphs.size;
  }

  values(): IterableIterator<G> {
    return this.graphs.values();
  }

  /** Disposes every graph; descriptions under way are described again when they finish. */
  clear(): void {
    this.epoch++;
    for (const g of this.graphs.values()) g.dispose();
    this.graphs.clear();
  }

  /** Disposes every graph for good (the model was disposed): later requests are DisposedErrors. */
  close(): void {
    this.clear();
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw this.disposedError();
  }

  private disposedError(): DisposedError {
    return new DisposedError(`${this.label}: the model was disposed`);
  }
}
