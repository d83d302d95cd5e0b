// A bounded loopback load test (scripts/load-test-server.js with small numbers): HTTP clients,
// typing WebSocket clients and vanishing clients at once against a server with a small queue.
// No crash, no lost response, no duplicate reply, no 5xx but 503.
'use strict';
const assert = require('assert');
const { fixture } = require('../helpers/fixtures');
const { freshSeed } = require('../helpers/random');
const { runLoad } = require('../../scripts/load-test-server');

describe('server: load (bounded, loopback)', function () {
  this.timeout(120000);

  it('HTTP + WebSocket + vanishing clients: no crash, no lost response', async () => {
    const seed = freshSeed();
    const r = await runLoad({ model: fixture('models', 'tiny-sd21'), http: 6, requests: 8, ws: 4, prompts: 15, vanish: 4, maxQueue: 3, seed, timeoutMs: 60000 });
    const detail = `seed ${seed}: ${JSON.stringify(r).slice(0, 1500)}`;
    assert.strictEqual(r.health, 200, detail);
    assert.deepStrictEqual(r.http.lost, [], detail);
    assert.deepStrictEqual(r.ws.lost, [], detail);
    assert.strictEqual(r.ws.duplicates, 0, detail);
    assert.strictEqual(r.http.sent, 48);
    assert.strictEqual(r.ws.sent, 60);
    for (const status of Object.keys(r.http.status)) assert.ok(status === '200' || status === '503', detail);
    // images were served; which clients got them is the queue's call: with 6 HTTP clients on a
    // queue of 3, every WebSocket client's last prompt may meet a full queue (ERR_ONESTEP_BUSY, a
    // final reply like any other, checked below) on a slow machine (seen once in CI: 0 images for
    // 4 clients); the WebSocket tests check its images
    assert.ok(r.http.status[200] > 0, detail);
    assert.ok(r.ws.errors.every((c) => c === 'ERR_ONESTEP_BUSY'), detail);
    assert.strictEqual(r.generations.error, 0, detail);
    assert.ok(r.generations.aborted > 0, `superseded and vanished generations were aborted: ${detail}`);
    assert.ok(r.ok, detail);
  });
});
