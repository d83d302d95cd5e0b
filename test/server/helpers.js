// Helpers for the server tests: a server on a free loopback port over a tiny fixture model,
// an HTTP client that never throws on status codes, a WebSocket client with a message inbox,
// and pipeline wrappers that let a test hold or watch generations.
'use strict';
const http = require('http');
const { WebSocket } = require('ws');
const { PNG } = require('pngjs');
const { createServer, loadPipeline } = require('../..');
const { fixture } = require('../helpers/fixtures');

const pipelines = new Map();

/** One loaded pipeline per fixture model for the whole run (loading takes ~0.3 s). */
async function tinyPipeline(name = 'tiny-sd21', options = {}) {
  const key = JSON.stringify([name, options]);
  if (!pipelines.has(key)) pipelines.set(key, loadPipeline(fixture('models', name), options));
  return pipelines.get(key);
}

/** A listening server; `events` collects its 'generation' events. */
async function startServer(options = {}) {
  const pipeline = options.pipeline || (await tinyPipeline());
  const server = createServer({ port: 0, ...options, pipeline });
  const events = [];
  server.on('generation', (e) => events.push(e));
  const url = await server.listen();
  return { server, url, events, wsUrl: `${url.replace(/^http/, 'ws')}ws` };
}

/** An HTTP request; resolves with { status, headers, body, json() } whatever the status. */
function request(url, { method = 'GET', headers = {}, body, json } = {}) {
  return new Promise((resolve, reject) => {
    let data = body;
    const h = { ...headers };
    if (json !== undefined) {
      data = typeof json === 'string' ? json : JSON.stringify(json);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['Content-Type'] = 'application/json';
    }
    const req = http.request(url, { method, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body: buf, json: () => JSON.parse(buf.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}

/** Decodes a base64 PNG and returns its size (throws when it is not a PNG). */
function pngSize(b64OrBuffer) {
  const png = PNG.sync.read(Buffer.isBuffer(b64OrBuffer) ? b64OrBuffer : Buffer.from(b64OrBuffer, 'base64'));
  return [png.width, png.height];
}

/** A WebSocket client with an inbox: next(pred) resolves with the first matching message. */
function wsClient(url, options = {}) {
  const ws = new WebSocket(url, options);
  const inbox = [];
  const waiters = [];
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    const i = waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(msg);
    else inbox.push(msg);
  });
  const client = {
    ws,
    inbox,
    open: () =>
      new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body: Buffer.concat(chunks).toString() })));
        });
      }),
    send: (msg) => ws.send(typeof msg === 'string' || Buffer.isBuffer(msg) ? msg : JSON.stringify(msg)),
    next: (pred = () => true, timeoutMs = 20000) => {
      const i = inbox.findIndex(pred);
      if (i >= 0) return Promise.resolve(inbox.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (m) => (clearTimeout(t), resolve(m)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`no matching message within ${timeoutMs} ms; inbox: ${JSON.stringify(inbox).slice(0, 500)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    closed: () => new Promise((resolve) => (ws.readyState === WebSocket.CLOSED ? resolve({ code: -1 }) : ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))),
  };
  return client;
}

/** Terminal replies of the real-time channel (one per generate message). */
const isFinal = (m) => m.type === 'image' || m.type === 'aborted' || m.type === 'error';

/**
 * Wraps a pipeline: each generate call is recorded ({ options, settled, error, steps }) and, while
 * `hold()` is on, waits for `release()` before it runs.
 */
function watched(pipeline) {
  let gate = null;
  let open = null;
  const calls = [];
  const w = {
    calls,
    get name() { return pipeline.name; },
    get family() { return pipeline.family; },
    get kind() { return pipeline.kind; },
    get defaults() { return pipeline.defaults; },
    get controlNetNames() { return pipeline.controlNetNames; },
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      const o = open;
      gate = null;
      open = null;
      if (o) o();
    },
    async generate(options) {
      const call = { options, settled: false, error: undefined, steps: 0 };
      calls.push(call);
      w.onCall?.(call);
      if (gate) await gate;
      try {
        return await pipeline.generate({
          ...options,
          onProgress: (e) => {
            if (e.stage === 'denoise') call.steps = e.step;
            w.onProgress?.(call, e);
            options.onProgress?.(e);
          },
        });
      } catch (e) {
        call.error = e;
        throw e;
      } finally {
        call.settled = true;
      }
    },
  };
  return w;
}

/** Resolves when `cond()` holds (polled), or fails after `timeoutMs`. */
async function until(cond, timeoutMs = 10000, what = 'condition') {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

module.exports = { tinyPipeline, startServer, request, pngSize, wsClient, isFinal, watched, until };
