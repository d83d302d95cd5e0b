// OnestepServer: node:http + the WebSocket channel over one GenerationService. It applies the
// checks every endpoint shares (Host, origin, API key, method), turns every failure into a JSON
// error, and shuts down gracefully (stop accepting, finish or abort, close sockets, dispose).
import { EventEmitter } from 'events';
import * as http from 'http';
import type { AddressInfo } from 'net';
import type { Duplex } from 'stream';
import { OnestepError } from '../errors';
import type { Pipeline } from '../pipelines';
import { type ServerError, badRequest, methodNotAllowed, notFound, shuttingDown, toServerError } from './errors';
import { type ResolvedOptions, type ServerOptions, resolveOptions } from './options';
import { RealtimeChannel } from './realtime';
import { sendError } from './respond';
import { ROUTES, type RouteContext, openAIShape } from './routes';
import { checkApiKey, checkHost, checkOrigin, setCorsHeaders } from './security';
import { GenerationService } from './service';
import { loadStaticFiles } from './static';

/** Emitted once per HTTP request when its response is done (or the client left). */
export interface RequestEvent {
  method: string;
  path: string;
  status: number;
  ms: number;
}

/** Open HTTP connections at most (beyond it the kernel backlog waits). */
const MAX_HTTP_CONNECTIONS = 256;

export class OnestepServer extends EventEmitter {
  readonly options: ResolvedOptions;
  readonly service: GenerationService;
  private readonly http: http.Server;
  private readonly realtime: RealtimeChannel;
  private readonly ctx: RouteContext;
  private readonly handlers = new Set<Promise<unknown>>();
  private readonly inflight = new Set<AbortController>();
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(options: ServerOptions) {
    super();
    this.options = resolveOptions(options);
    this.service = new GenerationService(this.options.pipeline, this.options.limits.maxQueue);
    this.service.on('generation', (e) => this.emit('generation', e));
    this.realtime = new RealtimeChannel(this.service, this.options, (e) => this.emit('internalError', e));
    this.ctx = {
      options: this.options,
      service: this.service,
      files: loadStaticFiles(),
      closing: () => this.closing,
      track: (ctrl) => {
        this.inflight.add(ctrl);
        return () => this.inflight.delete(ctrl);
      },
    };
    this.http = http.createServer((req, res) => {
      const p = this.handle(req, res).catch((e: unknown) => this.emit('internalError', e));
      this.handlers.add(p);
      void p.then(() => this.handlers.delete(p));
    });
    this.http.requestTimeout = 60_000;
    this.http.headersTimeout = 20_000;
    this.http.maxConnections = MAX_HTTP_CONNECTIONS;
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => clientError(err, socket));
  }

  /** Starts listening; resolves with the page's URL. */
  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => reject(new OnestepError('ERR_ONESTEP_LISTEN', `cannot listen on ${this.options.host}:${this.options.port}: ${e.code ?? e.message}`, { cause: e }));
      this.http.once('error', onError);
      this.http.listen(this.options.port, this.options.host, () => {
        this.http.off('error', onError);
        resolve(this.url);
      });
    });
  }

  get address(): AddressInfo | undefined {
    const a = this.http.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** http://host:port/ (the page); '' before listen(). */
  get url(): string {
    const a = this.address;
    if (!a) return '';
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}/`;
  }

  /** Open real-time (WebSocket) sessions. */
  get realtimeSessions(): number {
    return this.realtime.size;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    let path = '?';
    let openai = false;
    res.once('close', () => this.emit('request', { method: req.method ?? '?', path, status: res.headersSent ? res.statusCode : 499, ms: performance.now() - started } satisfies RequestEvent));
    try {
      const url = requestUrl(req);
      path = url.pathname;
      if (this.closing) {
        res.setHeader('Connection', 'close');
        throw shuttingDown();
      }
      checkHost(this.options, req);
      setCorsHeaders(this.options, req, res);
      const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
      if (!route) throw notFound(path);
      openai = !!route.openai;
      if (req.method === 'OPTIONS' && route.api) {
        checkOrigin(this.options, req);
        res.writeHead(204).end();
        return;
      }
      if (!route.methods.includes(req.method ?? '')) throw methodNotAllowed(req.method ?? '?', route.methods);
      if (route.api) {
        checkOrigin(this.options, req);
        checkApiKey(this.options, req, url);
      }
      await route.handle(this.ctx, req, res);
    } catch (e) {
      const err: ServerError = toServerError(e);
      if (err.status === 500) this.emit('internalError', e);
      if (err.status === 413) res.setHeader('Connection', 'close');
      sendError(res, err, openai ? openAIShape : undefined);
    }
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this.realtime.handleUpgrade(req, socket, head, () => {
      if (this.closing) throw shuttingDown();
      const url = requestUrl(req);
      if (url.pathname !== '/ws') throw notFound(url.pathname);
      checkHost(this.options, req);
      checkOrigin(this.options, req);
      checkApiKey(this.options, req, url, true);
    });
  }

  /**
   * Graceful shutdown: stops accepting, ends real-time sessions, lets running HTTP generations
   * finish for shutdownGraceMs then aborts them (they answer 503), closes every connection and,
   * when the server owns the pipeline, disposes it. Safe to call more than once.
   */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    this.closed = (async () => {
      const stopped = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeIdleConnections();
      this.realtime.close();
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.shutdownGraceMs);
      });
      await Promise.race([Promise.allSettled([...this.handlers]), grace]);
      clearTimeout(timer);
      for (const c of this.inflight) c.abort();
      this.service.queue.clear();
      await Promise.allSettled([...this.handlers]);
      await this.service.queue.idle();
      this.realtime.terminate();
      this.http.closeAllConnections();
      await stopped;
      const p = this.options.pipeline as Partial<Pipeline>;
      if (this.options.ownsPipeline && typeof p.dispose === 'function') p.dispose();
      this.emit('close');
    })();
    return this.closed;
  }
}

/** The request target as a URL (a 400 when it is not one). */
function requestUrl(req: http.IncomingMessage): URL {
  try {
    return new URL(req.url ?? '/', 'http://localhost');
  } catch {
    throw badRequest(`not a valid request target: ${JSON.stringify((req.url ?? '').slice(0, 100))}`);
  }
}

/** Malformed HTTP: a JSON 4xx where the socket still takes it, never an exception. */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const body = JSON.stringify({ error: { code: 'ERR_ONESTEP_BAD_HTTP', message: `malformed HTTP request (${err.code ?? 'parse error'})` } });
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** A server over a loaded pipeline (call listen()). */
export function createServer(options: ServerOptions): OnestepServer {
  return new OnestepServer(options);
}
