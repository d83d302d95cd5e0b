#!/usr/bin/env node
// A bounded loopback load test of `onestep serve`: HTTP clients (POST /generate as JSON or PNG,
// the OpenAI endpoint), WebSocket clients typing bursts of superseding prompts, and clients that
// vanish mid-request, all at once. It checks that the server never crashes and never loses a
// response: every HTTP request that stayed connected is answered (200, or 503 when the queue is
// full), every WebSocket prompt gets exactly one final reply, and /health answers afterwards.
//
//   node scripts/load-test-server.js [--model DIR | --url http://127.0.0.1:8787/] [--http 8]
//        [--requests 10] [--ws 4] [--prompts 20] [--vanish 4] [--max-queue 8] [--seed N] [--json]
//
// Exit 0 when nothing was lost, 1 otherwise. test/server/load.test.js runs it with small numbers.
'use strict';
const http = require('http');
const path = require('path');
const { parseArgs } = require('util');
const { WebSocket } = require('ws');

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** One HTTP request; resolves { status } or { error } (never rejects). `vanishAfterMs` destroys it. */
function post(url, pathname, body, { timeoutMs, vanishAfterMs } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(new URL(pathname, url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, agent: false, timeout: timeoutMs }, (res) => {
      let size = 0;
      res.on('data', (c) => (size += c.length));
      res.on('end', () => resolve({ status: res.statusCode, ms: performance.now() - t0, size, generationMs: Number(res.headers['x-latency-ms']) }));
      res.on('error', (e) => resolve({ error: e.code || e.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.code || e.message, vanished: vanishAfterMs !== undefined }));
    req.end(JSON.stringify(body));
    if (vanishAfterMs !== undefined) setTimeout(() => req.destroy(), vanishAfterMs);
  });
}

async function httpClient(url, rand, n, stats, timeoutMs) {
  for (let i = 0; i < n; i++) {
    const kind = rand() < 0.25 ? 'openai' : rand() < 0.5 ? 'png' : 'json';
    const seed = Math.floor(rand() * 2 ** 31);
    const steps = 1 + Math.floor(rand() * 4);
    const r =
      kind === 'openai'
        ? await post(url, 'v1/images/generations', { prompt: `load ${seed}`, seed, steps, n: 1 + Math.floor(rand() * 2) }, { timeoutMs })
        : await post(url, 'generate', { prompt: `load ${seed}`, seed, steps, format: kind }, { timeoutMs });
    stats.http.sent++;
    if (r.error) stats.http.lost.push(`${kind}: ${r.error}`);
    else {
      stats.http.status[r.status] = (stats.http.status[r.status] || 0) + 1;
      if (r.status === 200) stats.http.latencies.push(r.ms);
      if (r.status === 200 && Number.isFinite(r.generationMs)) stats.http.overheads.push(r.ms - r.generationMs);
      if (r.status === 503) await sleep(50 + Math.floor(rand() * 150)); // a polite client backs off (the server says Retry-After: 1)
    }
  }
}

async function vanishingClient(url, rand, stats) {
  const r = await post(url, 'generate', { prompt: 'gone', steps: 20 + Math.floor(rand() * 30) }, { vanishAfterMs: Math.floor(rand() * 40) });
  stats.vanished++;
  if (r.status) stats.http.status[r.status] = (stats.http.status[r.status] || 0) + 1; // answered before it left
}

/** Types `n` prompts with random gaps; waits for one final reply per prompt. */
function wsClient(url, rand, n, stats, timeoutMs, vanish) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}ws`);
    const finals = new Map();
    const sentAt = new Map();
    let sent = 0;
    let done = false;
    const finish = (lost) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (vanish) {
        stats.vanished++;
        ws.terminate();
        resolve();
        return;
      }
      stats.ws.sent += sent;
      for (let id = 1; id <= sent; id++) {
        const f = finals.get(id);
        if (!f) stats.ws.lost.push(`prompt ${id}: ${lost || 'no reply'}`);
        else stats.ws[f.type] = (stats.ws[f.type] || 0) + 1;
      }
      ws.terminate();
      resolve();
    };
    const timer = setTimeout(() => finish('timed out'), timeoutMs);
    ws.on('error', (e) => finish(e.message));
    ws.on('close', () => finish('closed'));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type !== 'image' && m.type !== 'aborted' && m.type !== 'error') return;
      if (finals.has(m.id)) stats.ws.duplicates++;
      finals.set(m.id, m);
      if (m.type === 'image' && m.id === sent) stats.ws.lastLatencies.push(performance.now() - sentAt.get(m.id));
      if (m.type === 'error') stats.ws.errors.push(m.error.code);
      if (sent === n && finals.size === n) finish();
    });
    ws.on('open', async () => {
      for (let i = 1; i <= n; i++) {
        if (done) return;
        sentAt.set(i, performance.now());
        ws.send(JSON.stringify({ type: 'generate', id: i, prompt: `typing ${'x'.repeat(i)}`, seed: i, steps: 1 + Math.floor(rand() * 3) }));
        sent = i;
        if (vanish && i === Math.ceil(n / 2)) {
          await sleep(5);
          finish();
          return;
        }
        await sleep(Math.floor(rand() * 50));
      }
    });
  });
}

async function runLoad(o) {
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  const rand = mulberry32(seed);
  let server;
  let url = o.url;
  const serverEvents = [];
  if (!url) {
    const { serve } = require(path.join(__dirname, '..'));
    server = await serve(o.model, { port: 0, limits: { maxQueue: o.maxQueue } });
    server.on('generation', (e) => serverEvents.push(e));
    url = server.url;
  }
  const stats = { seed, http: { sent: 0, status: {}, latencies: [], overheads: [], lost: [] }, ws: { sent: 0, lost: [], errors: [], duplicates: 0, lastLatencies: [] }, vanished: 0 };
  const t0 = performance.now();
  const jobs = [];
  for (let i = 0; i < o.http; i++) jobs.push(httpClient(url, mulberry32(seed + 1 + i), o.requests, stats, o.timeoutMs));
  for (let i = 0; i < o.ws; i++) jobs.push(wsClient(url, mulberry32(seed + 1000 + i), o.prompts, stats, o.timeoutMs, false));
  for (let i = 0; i < o.vanish; i++) {
    const r = mulberry32(seed + 2000 + i);
    jobs.push(i % 2 ? vanishingClient(url, r, stats) : wsClient(url, r, o.prompts, stats, o.timeoutMs, true));
  }
  await Promise.all(jobs);
  const wallMs = performance.now() - t0;
  const health = await new Promise((resolve) => http.get(new URL('health', url), { agent: false }, (res) => (res.resume(), resolve(res.statusCode))).on('error', (e) => resolve(e.code)));
  if (server) await server.close();
  const lat = stats.http.latencies.sort((a, b) => a - b);
  const over = stats.http.overheads.sort((a, b) => a - b);
  const wsLat = stats.ws.lastLatencies.sort((a, b) => a - b);
  const bad5xx = Object.entries(stats.http.status).filter(([s]) => s >= 500 && s !== '503');
  return {
    seed,
    wallMs,
    health,
    http: { sent: stats.http.sent, status: stats.http.status, lost: stats.http.lost, p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), overheadP50: percentile(over, 50), overheadP95: percentile(over, 95) },
    ws: { sent: stats.ws.sent, image: stats.ws.image || 0, aborted: stats.ws.aborted || 0, error: stats.ws.error || 0, errors: stats.ws.errors, duplicates: stats.ws.duplicates, lost: stats.ws.lost, lastPromptP50: percentile(wsLat, 50), lastPromptP95: percentile(wsLat, 95) },
    vanished: stats.vanished,
    generations: serverEvents.length ? { done: serverEvents.filter((e) => e.outcome === 'done').length, aborted: serverEvents.filter((e) => e.outcome === 'aborted').length, refused: serverEvents.filter((e) => e.error?.code === 'ERR_ONESTEP_BUSY').length, error: serverEvents.filter((e) => e.outcome === 'error' && e.error?.code !== 'ERR_ONESTEP_BUSY').length } : undefined,
    ok: health === 200 && stats.http.lost.length === 0 && stats.ws.lost.length === 0 && stats.ws.duplicates === 0 && bad5xx.length === 0 && stats.ws.errors.every((c) => c === 'ERR_ONESTEP_BUSY'),
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' }, url: { type: 'string' }, http: { type: 'string' }, requests: { type: 'string' }, ws: { type: 'string' },
      prompts: { type: 'string' }, vanish: { type: 'string' }, 'max-queue': { type: 'string' }, seed: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' },
    },
  });
  const o = {
    model: values.model ?? path.join(__dirname, '..', '..', 'shared', 'fixtures', 'models', 'tiny-sd21'),
    url: values.url,
    http: Number(values.http ?? 8),
    requests: Number(values.requests ?? 10),
    ws: Number(values.ws ?? 4),
    prompts: Number(values.prompts ?? 20),
    vanish: Number(values.vanish ?? 4),
    maxQueue: Number(values['max-queue'] ?? 8),
    seed: values.seed === undefined ? undefined : Number(values.seed),
    timeoutMs: Number(values.timeout ?? 60000),
  };
  const r = await runLoad(o);
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    const f = (x) => (Number.isFinite(x) ? `${x.toFixed(x < 10 ? 1 : 0)} ms` : '-');
    console.log(`load test (seed ${r.seed}) against ${o.url ?? o.model}: ${(r.wallMs / 1000).toFixed(1)} s`);
    console.log(`  HTTP: ${r.http.sent} requests from ${o.http} clients; status ${JSON.stringify(r.http.status)}; lost ${r.http.lost.length}; 200s p50 ${f(r.http.p50)}, p95 ${f(r.http.p95)}, p99 ${f(r.http.p99)}; time outside generation (queue + HTTP + base64) p50 ${f(r.http.overheadP50)}, p95 ${f(r.http.overheadP95)}`);
    console.log(`  WebSocket: ${r.ws.sent} prompts from ${o.ws} typing clients; ${r.ws.image} images, ${r.ws.aborted} superseded, ${r.ws.error} errors ${JSON.stringify([...new Set(r.ws.errors)])}; lost ${r.ws.lost.length}; duplicates ${r.ws.duplicates}; last prompt -> image p50 ${f(r.ws.lastPromptP50)}, p95 ${f(r.ws.lastPromptP95)}`);
    console.log(`  vanishing clients: ${r.vanished}; server generations ${JSON.stringify(r.generations ?? 'n/a')}; /health after: ${r.health}`);
    for (const l of [...r.http.lost, ...r.ws.lost].slice(0, 10)) console.log(`  LOST ${l}`);
    console.log(r.ok ? 'OK: no crash, no lost response' : 'FAILED');
  }
  process.exitCode = r.ok ? 0 : 1;
}

module.exports = { runLoad };
if (require.main === module) main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
