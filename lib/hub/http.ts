// A small HTTP client over node:http/https: manual redirects (Authorization dropped when the origin
// changes), idle timeouts, AbortSignal, hub error headers mapped to typed errors, retries with backoff.
import * as http from 'http';
import * as https from 'https';
import { version } from '../version';
import { HubAbortError, HubError } from './errors';

export interface HttpContext {
  endpoint: string;
  repoId: string;
  revision: string;
  token: string | undefined;
  /** Fires on the caller's abort and when a sibling transfer failed. */
  signal: AbortSignal;
  /** The caller's own signal: an abort there becomes a HubAbortError. */
  userSignal: AbortSignal | undefined;
  agents: { http: http.Agent; https: https.Agent };
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The URL that answered (after redirects). */
  url: URL;
  body: http.IncomingMessage;
}

export interface SendOptions {
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  timeoutMs: number;
  /** HEAD: stop at a redirect to another origin (the hub's 302 to its CDN carries the metadata). */
  stopAtCrossOrigin?: boolean;
  /** For messages: the repo file concerned. */
  file?: string;
}

const MAX_REDIRECTS = 10;
const retryable = new WeakSet<object>();

/** Marks an error as worth retrying (connection reset, timeout, 5xx, 429, truncated body). */
export function markRetryable<E extends object>(e: E): E {
  retryable.add(e);
  return e;
}

export function isRetryable(e: unknown): boolean {
  return typeof e === 'object' && e !== null && retryable.has(e);
}

export function createAgents(): { http: http.Agent; https: https.Agent } {
  return { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
}

export function abortError(ctx: HttpContext, file?: string): HubAbortError {
  const reason = ctx.userSignal?.reason;
  return new HubAbortError(`download of ${ctx.repoId}${file ? ` (${file})` : ''} aborted`, {
    repoId: ctx.repoId,
    revision: ctx.revision,
    file,
    cause: reason,
  });
}

/** Converts any transport error into a typed one (HubAbortError when the caller aborted). */
export function toHubError(e: unknown, ctx: HttpContext, url: URL | undefined, file?: string): HubError {
  if (ctx.userSignal?.aborted) return abortError(ctx, file);
  if (e instanceof HubError) return e;
  const err = e as NodeJS.ErrnoException;
  const what = err?.code ?? err?.message ?? String(e);
  const where = url ? url.origin : ctx.endpoint;
  const h = new HubError(
    'ERR_ONESTEP_HUB_NETWORK',
    `network error ${file ? `downloading ${file} of ${ctx.repoId} (from ${where})` : `asking ${where} about ${ctx.repoId}`}: ${what}. ` +
      'Check your connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache only',
    { repoId: ctx.repoId, revision: ctx.revision, file, cause: e },
  );
  const fatal = ['ENOTFOUND', 'ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'CERT_HAS_EXPIRED', 'DEPTH_ZERO_SELF_SIGNED_CERT'];
  if (!fatal.includes(err?.code ?? '')) markRetryable(h);
  return h;
}

function requestOnce(
  ctx: HttpContext,
  url: URL,
  method: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    if (ctx.signal.aborted) {
      reject(new Error('aborted'));
      return;
    }
    const secure = url.protocol === 'https:';
    const mod = secure ? https : http;
    let res: http.IncomingMessage | undefined;
    const onAbort = () => {
      const e = new Error('aborted');
      req.destroy(e);
      res?.destroy(e);
    };
    const cleanup = () => ctx.signal.removeEventListener('abort', onAbort);
    const req = mod.request(url, { method, headers, agent: secure ? ctx.agents.https : ctx.agents.http }, (r) => {
      res = r;
      r.once('close', cleanup);
      r.once('error', cleanup);
      resolve(r);
    });
    req.setTimeout(timeoutMs, () => {
      const e = Object.assign(new Error(`no data for ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' });
      req.destroy(e);
      res?.destroy(e);
    });
    req.once('error', (e) => {
      cleanup();
      reject(e);
    });
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/** Sends a request, following redirects; Authorization goes only to the endpoint's origin and its same-origin redirects. */
export async function send(ctx: HttpContext, start: URL, opts: SendOptions): Promise<HttpResponse> {
  let url = start;
  let sendAuth = ctx.token !== undefined;
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = {
      'user-agent': `onestep/${version}; node/${process.versions.node}`,
      'accept-encoding': 'identity',
      ...opts.headers,
    };
    if (sendAuth && ctx.token !== undefined) headers['authorization'] = `Bearer ${ctx.token}`;
    let res: http.IncomingMessage;
    try {
      res = await requestOnce(ctx, url, opts.method, headers, opts.timeoutMs);
    } catch (e) {
      throw toHubError(e, ctx, url, opts.file);
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (status >= 300 && status < 400 && status !== 304 && location) {
      let next: URL;
      try {
        next = new URL(location, url);
      } catch {
        res.resume();
        throw new HubError('ERR_ONESTEP_HUB_HTTP', `bad redirect location ${JSON.stringify(location)} from ${url.origin}`, {
          repoId: ctx.repoId,
          file: opts.file,
          status,
        });
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        res.resume();
        throw new HubError('ERR_ONESTEP_HUB_HTTP', `refusing redirect to ${next.protocol} URL`, { repoId: ctx.repoId, file: opts.file, status });
      }
      const crossOrigin = next.origin !== url.origin;
      if (crossOrigin && opts.stopAtCrossOrigin) return { status, headers: res.headers, url, body: res };
      res.resume();
      if (hop >= MAX_REDIRECTS) {
        throw markRetryable(
          new HubError('ERR_ONESTEP_HUB_NETWORK', `too many redirects from ${start.href}`, { repoId: ctx.repoId, file: opts.file, status }),
        );
      }
      if (crossOrigin) sendAuth = false; // never leak the token to a CDN or another host/port
      url = next;
      continue;
    }
    return { status, headers: res.headers, url, body: res };
  }
}

/** Reads a whole (small) body; larger than `limit` bytes is an error. */
export async function readBody(res: HttpResponse, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of res.body) {
    n += (chunk as Buffer).length;
    if (n > limit) {
      res.body.destroy();
      throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `response from ${res.url.origin} is larger than ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Turns an HTTP error status into a typed error naming the repo / revision / file. Consumes the body. */
export async function statusError(ctx: HttpContext, res: HttpResponse, file?: string): Promise<HubError> {
  let detail = header(res, 'x-error-message');
  if (res.body.readable) {
    try {
      const text = (await readBody(res, 65536)).toString('utf8');
      if (!detail) {
        try {
          const j = JSON.parse(text) as { error?: unknown; message?: unknown };
          detail = typeof j.error === 'string' ? j.error : typeof j.message === 'string' ? j.message : undefined;
        } catch {
          detail = text.trim().slice(0, 200) || undefined;
        }
      }
    } catch {
      // the message is optional
    }
  }
  const code = header(res, 'x-error-code');
  const s = res.status;
  const d = { repoId: ctx.repoId, revision: ctx.revision, file, status: s };
  const hubSays = detail ? ` (hub: ${detail})` : '';
  const repoUrl = `${ctx.endpoint}/${ctx.repoId}`;
  if (s === 401 || s === 403) {
    if (code === 'GatedRepo') {
      return new HubError(
        'ERR_ONESTEP_HUB_UNAUTHORIZED',
        `${ctx.repoId} is a gated repository: accept its conditions at ${repoUrl} and use a token of that account ` +
          `(set HF_TOKEN or pass { token })${hubSays}`,
        d,
      );
    }
    if (ctx.token === undefined) {
      return new HubError(
        'ERR_ONESTEP_HUB_UNAUTHORIZED',
        `${ctx.repoId}: this repository needs a token (set HF_TOKEN or pass { token }); the hub answered ${s}` +
          ` — it is private or gated, or does not exist${hubSays}`,
        d,
      );
    }
    return new HubError(
      'ERR_ONESTEP_HUB_UNAUTHORIZED',
      `${ctx.repoId}: the hub refused the token (${s}): check that HF_TOKEN / { token } is valid and has access to ${repoUrl}${hubSays}`,
      d,
    );
  }
  if (s === 404) {
    let msg: string;
    if (code === 'RepoNotFound') msg = `no such repository: ${ctx.repoId} (at ${ctx.endpoint})`;
    else if (code === 'RevisionNotFound') msg = `no such revision '${ctx.revision}' in ${ctx.repoId}`;
    else if (code === 'EntryNotFound' || file) msg = `no such file ${file ?? '(unknown)'} in ${ctx.repoId}@${ctx.revision}`;
    else msg = `no such repository / revision: ${ctx.repoId}@${ctx.revision} (at ${ctx.endpoint})`;
    return new HubError('ERR_ONESTEP_HUB_NOT_FOUND', msg + hubSays, d);
  }
  if (s === 429 || s >= 500) {
    return markRetryable(new HubError('ERR_ONESTEP_HUB_NETWORK', `${res.url.origin} answered ${s} for ${file ?? ctx.repoId}${hubSays}`, d));
  }
  return new HubError('ERR_ONESTEP_HUB_HTTP', `${res.url.origin} answered ${s} for ${file ?? ctx.repoId}${hubSays}`, d);
}

/** Waits `ms`, rejecting early when the signal fires. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new Error('aborted'));
      return;
    }
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Backoff before retry number `attempt` (0-based): 250 ms, 500 ms, 1 s, 2 s, ... capped at 8 s. */
export function backoffMs(attempt: number): number {
  return Math.min(8000, 250 * 2 ** attempt);
}

/** Runs `fn` up to `attempts` times while it fails with a retryable error. */
export async function withRetries<T>(ctx: HttpContext, attempts: number, fn: () => Promise<T>, file?: string): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      const err = toHubError(e, ctx, undefined, file);
      if (!isRetryable(err) || i + 1 >= attempts || ctx.signal.aborted) throw err;
      try {
        await sleep(backoffMs(i), ctx.signal);
      } catch {
        throw ctx.userSignal?.aborted ? abortError(ctx, file) : err;
      }
    }
  }
}

export function headerOf(res: HttpResponse, name: string): string | undefined {
  return header(res, name);
}
