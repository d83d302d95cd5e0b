// The queue and the server's life: a bounded queue (503 beyond it, nothing lost below it), HTTP
// clients vanishing while running or queued (their generations abort, the pipeline never sees
// the queued one), and graceful shutdown (running requests finish, or answer 503 after the grace
// period; WebSocket sessions close with 1001; the owned pipeline is disposed).
'use strict';
const assert = require('assert');
const http = require('http');
const { startServer, request, wsClient, isFinal, watched, tinyPipeline, until } = require('./helpers');

/** Starts a POST /generate and returns { done: Promise<response>, abort() } (abort destroys the socket). */
function startRequest(url, json) {
  let req;
  const done = new Promise((resolve, reject) => {
    req = http.request(`${url}generate`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, json: () => JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(json));
  });
  return { done, abort: () => req.destroy() };
}

describe('server: queue, vanishing clients, shutdown', function () {
  this.timeout(60000);
  let pipe;
  beforeEach(async () => {
    pipe = watched(await tinyPipeline());
  });

  it('a bounded queue: one runs, maxQueue wait, the rest get 503 at once; every accepted request is answered', async () => {
    const s = await startServer({ pipeline: pipe, limits: { maxQueue: 2 } });
    try {
      pipe.hold();
      const first = startRequest(s.url, { prompt: 'one', seed: 1 });
      await until(() => pipe.calls.length === 1, 5000, 'the first generation to start');
      const queued = [startRequest(s.url, { prompt: 'two', seed: 2 }), startRequest(s.url, { prompt: 'three', seed: 3 })];
      await until(() => s.server.service.queue.pending === 2, 5000, 'two queued');
      const refused = await Promise.all([0, 1, 2].map((i) => startRequest(s.url, { prompt: `extra ${i}` }).done));
      for (const r of refused) {
        assert.strictEqual(r.status, 503);
        assert.strictEqual(r.headers['retry-after'], '1');
        assert.strictEqual(r.json().error.code, 'ERR_ONESTEP_BUSY');
      }
      const health = (await request(`${s.url}health`)).json();
      assert.deepStrictEqual(health.queue, { running: 1, pending: 2 });
      pipe.release();
      const answers = await Promise.all([first, ...queued].map((r) => r.done));
      assert.deepStrictEqual(answers.map((a) => a.status), [200, 200, 200]);
      assert.deepStrictEqual(answers.map((a) => a.json().seed), [1, 2, 3]);
      assert.strictEqual(pipe.calls.length, 3);
      const refusedEvents = s.events.filter((e) => e.error && e.error.code === 'ERR_ONESTEP_BUSY');
      assert.strictEqual(refusedEvents.length, 3);
      assert.ok(refusedEvents.every((e) => !e.started));
    } finally {
      pipe.release();
      await s.server.close();
    }
  });

  it('an HTTP client vanishing mid-generation aborts it between steps; a queued one never runs', async () => {
    const s = await startServer({ pipeline: pipe });
    try {
      let running;
      pipe.onProgress = (call, e) => {
        if (e.stage === 'denoise' && e.step === 2) running = call;
      };
      const a = startRequest(s.url, { prompt: 'long', steps: 50 });
      a.done.catch(() => undefined);
      await until(() => running, 10000, 'the generation to reach step 2');
      pipe.onProgress = undefined;
      a.abort();
      await until(() => running.settled, 10000, 'the generation to stop');
      assert.strictEqual(running.error && running.error.code, 'ERR_ONESTEP_ABORTED');
      assert.ok(running.steps < 49, `ran ${running.steps} of 50 steps`);
      await until(() => s.events.length === 1);
      assert.strictEqual(s.events[0].outcome, 'aborted');

      // a request waiting behind a held generation, dropped while queued
      pipe.hold();
      const blocker = startRequest(s.url, { prompt: 'blocker', seed: 5 });
      await until(() => pipe.calls.length === 2, 5000, 'the blocker to start');
      const queued = startRequest(s.url, { prompt: 'queued' });
      queued.done.catch(() => undefined);
      await until(() => s.server.service.queue.pending === 1, 5000, 'one queued');
      queued.abort();
      await until(() => s.server.service.queue.pending === 0, 5000, 'the queued request to leave the queue');
      pipe.release();
      assert.strictEqual((await blocker.done).status, 200);
      assert.strictEqual(pipe.calls.length, 2, 'the vanished queued request never reached the pipeline');
      await until(() => s.events.length === 3);
      assert.deepStrictEqual(s.events.slice(1).map((e) => [e.outcome, e.started]).sort(), [['aborted', false], ['done', true]]);
      assert.strictEqual((await request(`${s.url}health`)).status, 200);
    } finally {
      pipe.release();
      await s.server.close();
    }
  });

  it('graceful shutdown: running and queued requests finish, new ones are refused, sessions close with 1001', async () => {
    const s = await startServer({ pipeline: pipe });
    pipe.hold();
    const running = startRequest(s.url, { prompt: 'running', seed: 1 });
    await until(() => pipe.calls.length === 1);
    const queued = startRequest(s.url, { prompt: 'queued', seed: 2 });
    await until(() => s.server.service.queue.pending === 1);
    const c = wsClient(s.wsUrl);
    await c.open();
    c.send({ type: 'generate', id: 'live', prompt: 'x' });
    await until(() => s.server.service.queue.pending === 2);
    const wsClosed = c.closed();
    const closing = s.server.close();
    assert.strictEqual((await wsClosed).code, 1001);
    const final = await c.next(isFinal);
    assert.strictEqual(final.error.code, 'ERR_ONESTEP_SHUTTING_DOWN');
    await assert.rejects(request(`${s.url}health`), /ECONNREFUSED/);
    pipe.release();
    const answers = await Promise.all([running.done, queued.done]);
    assert.deepStrictEqual(answers.map((a) => a.status), [200, 200]);
    await closing;
    await s.server.close(); // again: the same promise
    // the server does not own this pipeline: it still works
    assert.strictEqual((await pipe.generate({ prompt: 'x' })).length, 1);
  });

  it('after the grace period, running requests are aborted and answer 503', async () => {
    const s = await startServer({ pipeline: pipe, shutdownGraceMs: 50 });
    let started = false;
    pipe.onProgress = (call, e) => {
      if (e.stage === 'denoise' && e.step === 1) started = true;
    };
    const r = startRequest(s.url, { prompt: 'long', steps: 50 });
    await until(() => started, 10000, 'the generation to start');
    pipe.onProgress = undefined;
    await s.server.close();
    const res = await r.done;
    assert.strictEqual(res.status, 503);
    assert.strictEqual(res.json().error.code, 'ERR_ONESTEP_SHUTTING_DOWN');
  });

  it('serve(model) owns its pipeline: close() disposes it', async () => {
    const { serve } = require('../..');
    const { fixture } = require('../helpers/fixtures');
    const server = await serve(fixture('models', 'tiny-sd21'), { port: 0 });
    const r = await request(`${server.url}generate`, { method: 'POST', json: { prompt: 'x' } });
    assert.strictEqual(r.status, 200);
    const p = server.service.pipeline;
    await server.close();
    await assert.rejects(p.generate({ prompt: 'x' }), /disposed/);
  });
});
