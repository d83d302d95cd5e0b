// A bounded FIFO in front of the pipeline: one generation runs at a time, at most `maxPending`
// wait; a full queue is refused at once (503), and a waiting job whose signal aborts leaves the
// queue immediately, so superseded real-time prompts never reach the pipeline.
import { AbortError } from '../errors';
import { busy } from './errors';

interface Job {
  start: () => void;
  cancel: () => void;
}

export class JobQueue {
  private readonly waiting: Job[] = [];
  private active = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly maxPending: number) {}

  /** Jobs waiting (not counting the one running). */
  get pending(): number {
    return this.waiting.length;
  }

  /** Jobs running now (0 or 1). */
  get running(): number {
    return this.active;
  }

  /**
   * Runs `task` when its turn comes. Rejects with a 503 ServerError when the queue is full and with
   * an AbortError when `signal` aborts while waiting (a running task sees the signal itself).
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new AbortError('aborted before it was queued'));
    if (this.active > 0 && this.waiting.length >= this.maxPending) return Promise.reject(busy(this.waiting.length));
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(job);
        if (i >= 0) {
          this.waiting.splice(i, 1);
          reject(new AbortError('aborted while queued'));
        }
      };
      const job: Job = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.active++;
          task()
            .then(resolve, reject)
            .finally(() => {
              this.active--;
              this.next();
            });
        },
        cancel: () => {
          signal?.removeEventListener('abort', onAbort);
          reject(new AbortError('the queue was cleared'));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(job);
      this.next();
    });
  }

  private next(): void {
    if (this.active === 0) {
      const job = this.waiting.shift();
      if (job) {
        job.start();
        return;
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves once nothing runs and nothing waits. */
  idle(): Promise<void> {
    if (this.active === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Rejects every waiting job (shutdown). */
  clear(): void {
    for (const job of this.waiting.splice(0)) job.cancel();
    this.next();
  }
}
