// The real-time WebSocket channel: hello, generate -> progress -> image; latest wins (a burst
// of superseding prompts: every message gets exactly one final reply, the last one an image,
// stale ones aborted or never run); cancel; a client vanishing mid-generation; bad messages;
// the key, Origin and session limits on the upgrade.
'use strict';
const assert = require('assert');
const { Rng } = require('../helpers/random');
const { startServer, request, pngSize, wsClient, isFinal, watched, tinyPipeline, until } = require('./helpers');

describe('server: WebSocket /ws', function () {
  this.timeout(60000);
  const rng = new Rng();
  let s;
  let pipe;
  const clients = [];
  const connect = async (url = s.wsUrl, options) => {
    const c = wsClient(url, options);
    clients.push(c);
    await c.open();
    return c;
  };
  before(async () => {
    pipe = watched(await tinyPipeline());
    s = await startServer({ pipeline: pipe });
  });
  afterEach(function () {
    for (const c of clients.splice(0)) c.ws.terminate();
    if (this.currentTest.state === 'failed') console.log(`      (random seed: ONESTEP_TEST_SEED=${rng.seed})`);
  });
  after(() => s.server.close());

  it('says hello, then answers generate with progress and an image', async () => {
    const c = await connect();
    const hello = await c.next((m) => m.type === 'hello');
    assert.strictEqual(hello.model.name, 'tiny-sd21');
    assert.strictEqual(hello.limits.maxSteps, 50);
    const seed = rng.int(2 ** 31);
    c.send({ type: 'generate', id: 'a', prompt: 'a fox', seed, steps: 2 });
    const progress = await c.next((m) => m.type === 'progress');
    assert.strictEqual(progress.id, 'a');
    const img = await c.next(isFinal);
    assert.strictEqual(img.type, 'image', JSON.stringify(img));
    assert.strictEqual(img.id, 'a');
    assert.strictEqual(img.seed, seed);
    assert.ok(img.latencyMs > 0);
    assert.deepStrictEqual(pngSize(img.images[0].b64_png), [64, 64]);
    // the same request over HTTP gives the same image
    const http = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed, steps: 2 } })).json();
    assert.strictEqual(http.images[0].b64_png, img.images[0].b64_png);
  });

  it('a burst of superseding prompts: one final reply each, the latest wins, stale ones aborted or never run', async () => {
    const c = await connect();
    const n = 15 + rng.int(10);
    const before = pipe.calls.length;
    const eventsBefore = s.events.length;
    for (let i = 1; i <= n; i++) c.send({ type: 'generate', id: i, prompt: `a fox ${'x'.repeat(i)}`, seed: i, steps: 1 + rng.int(8) });
    const finals = new Map();
    while (finals.size < n) {
      const m = await c.next(isFinal);
      assert.ok(!finals.has(m.id), `two final replies for ${m.id}`);
      finals.set(m.id, m);
    }
    assert.strictEqual(finals.get(n).type, 'image', JSON.stringify(finals.get(n)).slice(0, 200));
    for (let i = 1; i < n; i++) {
      const m = finals.get(i);
      assert.ok(m.type === 'aborted' || m.type === 'image', `${i}: ${JSON.stringify(m).slice(0, 200)}`);
      if (m.type === 'aborted') assert.strictEqual(m.reason, 'superseded');
    }
    const aborted = [...finals.values()].filter((m) => m.type === 'aborted').length;
    assert.ok(aborted >= n - 3, `only ${aborted} of ${n} superseded`);
    // superseded prompts that were still queued never reached the pipeline
    await until(() => s.events.length - eventsBefore === n, 5000, 'a generation event per prompt');
    const ran = pipe.calls.length - before;
    assert.ok(ran < n, `${ran} of ${n} prompts reached the pipeline`);
    const evs = s.events.slice(eventsBefore);
    assert.strictEqual(evs.filter((e) => e.outcome === 'done').length, n - aborted);
    assert.ok(evs.every((e) => e.source === 'ws' && e.outcome !== 'error'));
    // nothing more arrives for them
    await new Promise((r) => setTimeout(r, 100));
    assert.deepStrictEqual(c.inbox.filter(isFinal), []);
  });

  it('cancel aborts the live generation', async () => {
    const c = await connect();
    c.send({ type: 'generate', id: 7, prompt: 'slow', steps: 50 });
    await c.next((m) => m.type === 'progress' && m.stage === 'denoise' && m.step >= 1);
    c.send({ type: 'cancel' });
    const m = await c.next(isFinal);
    assert.deepStrictEqual(m, { type: 'aborted', id: 7, reason: 'cancelled' });
  });

  it('a client vanishing mid-generation aborts it between steps; the server carries on', async () => {
    const c = await connect();
    let call;
    pipe.onCall = (x) => (call = x);
    c.send({ type: 'generate', id: 1, prompt: 'vanishing', steps: 50 });
    await c.next((m) => m.type === 'progress' && m.stage === 'denoise' && m.step >= 2);
    c.ws.terminate();
    await until(() => call && call.settled, 10000, 'the generation to stop');
    pipe.onCall = undefined;
    assert.strictEqual(call.error && call.error.code, 'ERR_ONESTEP_ABORTED');
    assert.ok(call.steps < 49, `ran ${call.steps} of 50 steps`);
    const c2 = await connect();
    c2.send({ type: 'generate', id: 2, prompt: 'after', seed: 1 });
    assert.strictEqual((await c2.next(isFinal)).type, 'image');
  });

  it('bad messages get an error reply and the session stays usable', async () => {
    const c = await connect();
    const bad = [
      ['not json', 'ERR_ONESTEP_BAD_JSON', null],
      [Buffer.from([1, 2, 3]), 'ERR_ONESTEP_BAD_REQUEST', null],
      ['[1]', 'ERR_ONESTEP_BAD_REQUEST', null],
      [{ type: 'paint', id: 1 }, 'ERR_ONESTEP_BAD_REQUEST', 1],
      [{ type: 'generate', id: 2 }, 'ERR_ONESTEP_BAD_REQUEST', 2],
      [{ type: 'generate', id: 3, prompt: 'x', steps: 99 }, 'ERR_ONESTEP_LIMIT', 3],
      [{ type: 'generate', id: 4, prompt: 'x', width: 100 }, 'ERR_ONESTEP_ARGUMENT', 4],
      [{ type: 'generate', id: 5, prompt: 'x', format: 'png' }, 'ERR_ONESTEP_BAD_REQUEST', 5],
      [{ type: 'generate', id: { a: 1 }, prompt: 'x' }, 'ERR_ONESTEP_BAD_REQUEST', null],
    ];
    for (const [msg, code, id] of bad) {
      if (Buffer.isBuffer(msg)) c.ws.send(msg, { binary: true });
      else c.send(msg);
      const m = await c.next(isFinal);
      assert.strictEqual(m.type, 'error', JSON.stringify(m));
      assert.strictEqual(m.error.code, code, m.error.message);
      assert.strictEqual(m.id, id);
    }
    c.send({ type: 'generate', id: 'ok', prompt: 'x' });
    assert.strictEqual((await c.next(isFinal)).type, 'image');
  });

  describe('the upgrade', () => {
    let keyed;
    const key = `key-${rng.int(2 ** 31)}`;
    before(async () => {
      keyed = await startServer({ apiKey: key, limits: { maxConnections: 2, maxBodyBytes: 4096 } });
    });
    after(() => keyed.server.close());

    it('needs the API key (header or ?key=), a same-origin page, the /ws path', async () => {
      await assert.rejects(connect(keyed.wsUrl), (e) => e.status === 401 && /ERR_ONESTEP_UNAUTHORIZED/.test(e.body));
      await assert.rejects(connect(`${keyed.wsUrl}?key=wrong-key`), (e) => e.status === 401);
      await connect(`${keyed.wsUrl}?key=${key}`);
      (await connect(keyed.wsUrl, { headers: { Authorization: `Bearer ${key}` } })).ws.terminate();
      await assert.rejects(connect(`${s.url.replace('http', 'ws')}elsewhere`), (e) => e.status === 404);
      await assert.rejects(connect(s.wsUrl, { origin: 'http://evil.example' }), (e) => e.status === 403);
      await connect(s.wsUrl, { origin: s.url.slice(0, -1) });
    });

    it('at most maxConnections sessions (503 beyond); messages over maxBodyBytes close the session (1009)', async () => {
      for (const c of clients.splice(0)) c.ws.terminate();
      await until(() => keyed.server.realtimeSessions === 0, 5000, 'the sessions of the last test to close');
      const a = await connect(`${keyed.wsUrl}?key=${key}`);
      await connect(`${keyed.wsUrl}?key=${key}`);
      await assert.rejects(connect(`${keyed.wsUrl}?key=${key}`), (e) => e.status === 503 && /ERR_ONESTEP_BUSY/.test(e.body));
      const closed = a.closed();
      a.send({ type: 'generate', prompt: 'x'.repeat(5000) });
      assert.strictEqual((await closed).code, 1009);
      // its slot is free again
      await until(() => keyed.server.realtimeSessions === 1, 5000, 'the session to close');
      await connect(`${keyed.wsUrl}?key=${key}`);
    });
  });
});
