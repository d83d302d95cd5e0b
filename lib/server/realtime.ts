// The real-time channel (WebSocket at /ws): each session has at most one live generation; a new
// prompt aborts the one in flight (between steps) or drops it from the queue: latest wins. Every
// `generate` message gets exactly one final reply: `image` (it completed), `aborted` (superseded
// or cancelled before it completed) or `error`.
import { type IncomingMessage, STATUS_CODES } from 'http';
import type { Duplex } from 'stream';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { type ServerError, badJson, badRequest, errorBody, shuttingDown, toServerError, tooManySessions } from './errors';
import type { ResolvedOptions } from './options';
import { GENERATE_FIELDS, asObject, parseGenerate, rejectUnknown } from './params';
import type { GenerationResult, GenerationService } from './service';

type MessageId = string | number | null;

/** What the client sends. */
export type ClientMessage = { type: 'generate'; id?: string | number; [field: string]: unknown } | { type: 'cancel' };

/** What the server sends. */
export type ServerMessage =
  | { type: 'hello'; model: object; limits: object }
  | { type: 'progress'; id: MessageId; stage: string; step: number; steps: number }
  | { type: 'image'; id: MessageId; images: Array<{ b64_png: string; width: number; height: number }>; seed: number | string; latencyMs: number; queueMs: number; warnings: string[] }
  | { type: 'aborted'; id: MessageId; reason: 'superseded' | 'cancelled' }
  | { type: 'error'; id: MessageId; error: { code: string; message: string } };

const HEARTBEAT_MS = 30_000;

function readId(o: Record<string, unknown>): MessageId {
  const id = o.id;
  if (id === undefined || id === null) return null;
  if ((typeof id === 'string' && id.length <= 200) || (typeof id === 'number' && Number.isFinite(id))) return id;
  throw badRequest("'id' must be a string (at most 200 characters) or a number");
}

export function imageMessage(id: MessageId, r: GenerationResult): ServerMessage {
  return { type: 'image', id, images: r.images.map((i) => ({ b64_png: i.png.toString('base64'), width: i.width, height: i.height })), seed: r.seed, latencyMs: r.latencyMs, queueMs: r.queueMs, warnings: r.warnings };
}

class Session {
  private current: { id: MessageId; ctrl: AbortController; reason?: 'superseded' | 'cancelled' | 'closed' } | undefined;
  private alive = true;

  constructor(
    private readonly ws: WebSocket,
    private readonly service: GenerationService,
    private readonly options: ResolvedOptions,
    private readonly onInternalError: (e: unknown) => void,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
    });
    // a vanished client: stop its generation (an 'error' listener also keeps ws errors from throwing)
    ws.on('close', () => this.stop('closed'));
    ws.on('error', () => this.stop('closed'));
    const p = service.pipeline;
    this.send({ type: 'hello', model: { name: p.name, family: p.family, kind: p.kind, defaults: p.defaults }, limits: options.limits });
  }

  send(msg: ServerMessage): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private sendError(id: MessageId, e: ServerError): void {
    this.send({ type: 'error', id, ...errorBody(e) });
  }

  stop(reason: 'superseded' | 'cancelled' | 'closed'): void {
    if (!this.current) return;
    this.current.reason = reason;
    this.current.ctrl.abort();
    this.current = undefined;
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    let id: MessageId = null;
    try {
      if (isBinary) throw badRequest('send JSON text messages');
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString());
      } catch (e) {
        throw badJson(`the message is not valid JSON: ${(e as Error).message}`);
      }
      const o = asObject(msg, 'a message');
      id = readId(o);
      if (o.type === 'cancel') {
        this.stop('cancelled');
        return;
      }
      if (o.type !== 'generate') throw badRequest(`'type' must be 'generate' or 'cancel', got ${JSON.stringify(o.type)}`);
      rejectUnknown(o, ['type', 'id', ...GENERATE_FIELDS]);
      this.start(id, parseGenerate(o, this.options.limits));
    } catch (e) {
      this.sendError(id, toServerError(e));
    }
  }

  private start(id: MessageId, params: ReturnType<typeof parseGenerate>): void {
    this.stop('superseded');
    const job: NonNullable<Session['current']> = { id, ctrl: new AbortController() };
    this.current = job;
    this.service
      .generate(params, {
        source: 'ws',
        signal: job.ctrl.signal,
        onProgress: (e) => {
          if (this.current === job) this.send({ type: 'progress', id, stage: e.stage, step: e.step, steps: e.steps });
        },
      })
      .then(
        // an image that was finished before a newer prompt arrived is still sent: the work is done
        (r) => this.send(imageMessage(id, r)),
        (e) => (job.reason ? this.finishAborted(job) : this.sendError(id, toServerError(e))),
      )
      .catch(this.onInternalError)
      .finally(() => {
        if (this.current === job) this.current = undefined;
      });
  }

  private finishAborted(job: NonNullable<Session['current']>): void {
    if (job.reason === 'superseded' || job.reason === 'cancelled') this.send({ type: 'aborted', id: job.id, reason: job.reason });
  }

  /** Heartbeat: terminates a session that did not answer the last ping. */
  ping(): void {
    if (!this.alive) {
      this.terminate();
      return;
    }
    this.alive = false;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.ping();
  }

  terminate(): void {
    this.stop('closed');
    this.ws.terminate();
  }

  /** Shutdown: the live generation ends with an error reply, then the socket closes (1001). */
  shutdown(): void {
    if (this.current) {
      this.sendError(this.current.id, shuttingDown());
      this.stop('closed');
    }
    this.ws.close(1001, 'server shutting down');
  }
}

export class RealtimeChannel {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Set<Session>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly service: GenerationService,
    private readonly options: ResolvedOptions,
    private readonly onInternalError: (e: unknown) => void,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: options.limits.maxBodyBytes, perMessageDeflate: false, clientTracking: false });
    // a client that stops answering pings is dropped (and its generation aborted)
    this.heartbeat = setInterval(() => {
      for (const s of this.sessions) s.ping();
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Completes an upgrade that passed the server's checks (`check` throws a ServerError to refuse). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, check: () => void): void {
    socket.on('error', () => socket.destroy());
    try {
      check();
      if (this.sessions.size >= this.options.limits.maxConnections) throw tooManySessions(this.options.limits.maxConnections);
    } catch (e) {
      rejectUpgrade(socket, toServerError(e));
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new Session(ws, this.service, this.options, this.onInternalError);
      this.sessions.add(session);
      ws.once('close', () => this.sessions.delete(session));
    });
  }

  /** Ends every session (their generations abort) and stops the heartbeat. */
  close(): void {
    clearInterval(this.heartbeat);
    for (const s of this.sessions) s.shutdown();
    this.wss.close();
  }

  /** Drops the sockets of sessions whose clients did not complete the closing handshake. */
  terminate(): void {
    for (const s of this.sessions) s.terminate();
  }
}

/** Answers a refused upgrade with a plain HTTP error response carrying the JSON error. */
function rejectUpgrade(socket: Duplex, e: ServerError): void {
  const body = JSON.stringify(errorBody(e));
  const headers = { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close', ...e.headers };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  if (socket.writable) socket.end(`HTTP/1.1 ${e.status} ${STATUS_CODES[e.status] ?? ''}\r\n${lines.join('\r\n')}\r\n\r\n${body}`);
  else socket.destroy();
}
