// The HTTP API on loopback over the tiny SD-Turbo-style fixture: the page, /health, /info,
// POST /generate (JSON and PNG, img2img), every kind of bad request as a 4xx JSON error
// (including fresh random garbage), the API key, Host / Origin checks and CORS, body limits.
'use strict';
const assert = require('assert');
const net = require('net');
const { PNG } = require('pngjs');
const { Rng } = require('../helpers/random');
const { startServer, request, pngSize, tinyPipeline } = require('./helpers');

function assertJsonError(r, status, code) {
  assert.strictEqual(r.status, status, `expected ${status}, got ${r.status}: ${r.body.toString().slice(0, 300)}`);
  assert.match(r.headers['content-type'], /^application\/json/);
  const body = r.json();
  assert.strictEqual(typeof body.error.message, 'string');
  if (code) assert.strictEqual(body.error.code, code, body.error.message);
  return body.error;
}

/** A PNG of the given size whose pixels are drawn from rng. */
function randomPng(rng, width, height) {
  const png = new PNG({ width, height });
  for (let i = 0; i < png.data.length; i++) png.data[i] = rng.int(256);
  return PNG.sync.write(png);
}

describe('server: HTTP API', function () {
  this.timeout(60000);
  const rng = new Rng();
  let s;
  before(async () => {
    s = await startServer();
  });
  after(() => s.server.close());
  afterEach(function () {
    if (this.currentTest.state === 'failed') console.log(`      (random seed: ONESTEP_TEST_SEED=${rng.seed})`);
  });

  it('listens on 127.0.0.1 by default and serves the page with a strict CSP', async () => {
    assert.strictEqual(s.server.address.address, '127.0.0.1');
    const page = await request(s.url);
    assert.strictEqual(page.status, 200);
    assert.match(page.headers['content-type'], /^text\/html/);
    assert.match(page.headers['content-security-policy'], /default-src 'self'/);
    assert.match(page.body.toString(), /<textarea id="prompt"/);
    for (const [file, type] of [['app.js', /javascript/], ['style.css', /css/]]) {
      const r = await request(s.url + file);
      assert.strictEqual(r.status, 200);
      assert.match(r.headers['content-type'], type);
    }
  });

  it('/health and /info describe the server, the model and the limits', async () => {
    const h = await request(`${s.url}health`);
    assert.deepStrictEqual(h.json(), { status: 'ok', queue: { running: 0, pending: 0 } });
    const i = (await request(`${s.url}info`)).json();
    assert.strictEqual(i.server, 'onestep');
    assert.deepStrictEqual(i.model, { name: 'tiny-sd21', family: 'sd', kind: 'standard', defaults: { width: 64, height: 64, steps: 1, guidanceScale: 0 }, controlnets: [] });
    assert.strictEqual(i.limits.maxSteps, 50);
    assert.strictEqual(i.apiKeyRequired, false);
  });

  it('POST /generate returns base64 PNGs; the same seed gives the same bytes', async () => {
    const seed = rng.int(2 ** 31);
    const a = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed } });
    assert.strictEqual(a.status, 200, a.body.toString());
    const body = a.json();
    assert.strictEqual(body.seed, seed);
    assert.ok(body.latencyMs > 0 && body.queueMs >= 0);
    assert.deepStrictEqual(pngSize(body.images[0].b64_png), [64, 64]);
    const b = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed } })).json();
    assert.strictEqual(b.images[0].b64_png, body.images[0].b64_png);
    const c = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed: seed + 1 } })).json();
    assert.notStrictEqual(c.images[0].b64_png, body.images[0].b64_png);
    // no seed: the server draws one and says which
    const d = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox' } })).json();
    assert.ok(Number.isInteger(d.seed));
    const big = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed: '18446744073709551615' } })).json();
    assert.strictEqual(big.seed, '18446744073709551615');
  });

  it('a prompt past the text encoder window: the response says how many tokens were dropped (JSON field, PNG header, OpenAI field)', async () => {
    const prompt = Array.from({ length: 95 }, (_, i) => `w${i}`).join(' ');
    const j = await request(`${s.url}generate`, { method: 'POST', json: { prompt, seed: 1 } });
    assert.strictEqual(j.status, 200, j.body.toString());
    assert.strictEqual(j.json().warnings.length, 1);
    assert.match(j.json().warnings[0], /so the last \d+ were dropped/);
    const p = await request(`${s.url}generate`, { method: 'POST', json: { prompt, seed: 1, format: 'png' } });
    assert.match(p.headers['x-onestep-warnings'], /were dropped/);
    const o = await request(`${s.url}v1/images/generations`, { method: 'POST', json: { prompt } });
    assert.match(o.json().warnings[0], /were dropped/);
    assert.deepStrictEqual((await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed: 1 } })).json().warnings, []);
    // the seed rule is the pipelines' one
    const neg = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', seed: -1 } });
    assertJsonError(neg, 400, 'ERR_ONESTEP_BAD_REQUEST');
    assert.match(neg.json().error.message, /seed must be an integer in 0\.\.2\^64-1 \(omit it for a random one\)/);
  });

  it('ControlNet: `control` carries control images for the server\'s ControlNets; misuse is a 400 naming it', async () => {
    const { fixture } = require('../helpers/fixtures');
    const cn = await startServer({ pipeline: await tinyPipeline('tiny-sd15', { controlnet: fixture('models', 'tiny-sd15-controlnet') }) });
    try {
      const info = (await request(`${cn.url}info`)).json();
      assert.deepStrictEqual(info.model.controlnets, [fixture('models', 'tiny-sd15-controlnet')]);
      const image = randomPng(rng, 64, 64).toString('base64');
      const plain = (await request(`${cn.url}generate`, { method: 'POST', json: { prompt: 'a house', seed: 4 } })).json();
      const r = await request(`${cn.url}generate`, { method: 'POST', json: { prompt: 'a house', seed: 4, control: { image, scale: 0.8 } } });
      assert.strictEqual(r.status, 200, r.body.toString());
      assert.notStrictEqual(r.json().images[0].b64_png, plain.images[0].b64_png, 'the control image changes the image');
      const two = await request(`${cn.url}generate`, { method: 'POST', json: { prompt: 'a house', seed: 4, control: [{ image, scale: 0.4 }, { image: `data:image/png;base64,${image}`, start: 0, end: 0.5 }] } });
      assert.strictEqual(two.status, 200, two.body.toString());
      for (const [control, code, re] of [
        [{ image, weight: 1 }, 'ERR_ONESTEP_BAD_REQUEST', /unknown field 'control\.weight'/],
        [{ scale: 1 }, 'ERR_ONESTEP_BAD_REQUEST', /'control\.image' is required/],
        [{ image, scale: 11 }, 'ERR_ONESTEP_BAD_REQUEST', /'scale' must be in \[0, 10\]/],
        [{ image, start: 0.7, end: 0.2 }, 'ERR_ONESTEP_ARGUMENT', /start 0\.7 must be below end 0\.2/],
        [{ image, index: 2 }, 'ERR_ONESTEP_ARGUMENT', /control\.index must be an integer in 0\.\.0/],
      ]) {
        const bad = await request(`${cn.url}generate`, { method: 'POST', json: { prompt: 'x', control } });
        assertJsonError(bad, 400, code);
        assert.match(bad.json().error.message, re);
      }
    } finally {
      await cn.server.close();
    }
    // a server without a ControlNet says so
    const none = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', control: { image: randomPng(rng, 64, 64).toString('base64') } } });
    assertJsonError(none, 400, 'ERR_ONESTEP_ARGUMENT');
    assert.match(none.json().error.message, /has no ControlNet/);
  });

  it("format 'png' answers image/png with the seed and latency in headers; batches come as JSON", async () => {
    const r = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', seed: 3, steps: 2, format: 'png' } });
    assert.strictEqual(r.status, 200);
    assert.strictEqual(r.headers['content-type'], 'image/png');
    assert.strictEqual(r.headers['x-seed'], '3');
    assert.ok(Number(r.headers['x-latency-ms']) > 0);
    assert.deepStrictEqual(pngSize(r.body), [64, 64]);
    const batch = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', batchSize: 2, width: 32, height: 48 } })).json();
    assert.deepStrictEqual(batch.images.map((i) => pngSize(i.b64_png)), [[32, 48], [32, 48]]);
    assertJsonError(await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', batchSize: 2, format: 'png' } }), 400, 'ERR_ONESTEP_BAD_REQUEST');
  });

  it('img2img from a PNG (base64 or data URL), size taken from the image or resized to the one asked', async () => {
    const input = randomPng(rng, 64, 48);
    for (const image of [input.toString('base64'), `data:image/png;base64,${input.toString('base64')}`]) {
      const r = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a painting', image, strength: 0.6, steps: 2, seed: 1 } });
      assert.strictEqual(r.status, 200, r.body.toString());
      assert.deepStrictEqual(pngSize(r.json().images[0].b64_png), [64, 48]);
    }
    // another size is resized to it (diffusers' Lanczos); the model's defaults (Turbo: 1 step, strength 0.5) just work
    const r = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', image: input.toString('base64'), width: 32, height: 32 } });
    assert.strictEqual(r.status, 200, r.body.toString());
    assert.deepStrictEqual(pngSize(r.json().images[0].b64_png), [32, 32]);
    // a truncated PNG (its header intact) is a 400 that says so
    const cut = input.subarray(0, input.length - 20).toString('base64');
    const bad = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x', image: cut } });
    assertJsonError(bad, 400, 'ERR_ONESTEP_ARGUMENT');
    assert.match(bad.json().error.message, /truncated PNG/);
  });

  describe('bad requests are 4xx JSON errors', () => {
    const ihdr = (w, h) => {
      const b = Buffer.alloc(33);
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b);
      b.writeUInt32BE(13, 8);
      b.write('IHDR', 12, 'latin1');
      b.writeUInt32BE(w, 16);
      b.writeUInt32BE(h, 20);
      b[24] = 8;
      b[25] = 2;
      return b.toString('base64');
    };
    const cases = [
      ['not JSON content type', { body: '{"prompt":"x"}', headers: { 'Content-Type': 'text/plain' } }, 415, 'ERR_ONESTEP_MEDIA_TYPE'],
      ['no content type', { body: '{"prompt":"x"}' }, 415, 'ERR_ONESTEP_MEDIA_TYPE'],
      ['truncated JSON', { json: '{"prompt": "x"' }, 400, 'ERR_ONESTEP_BAD_JSON'],
      ['empty body', { json: '' }, 400, 'ERR_ONESTEP_BAD_JSON'],
      ['a JSON array', { json: '[1,2]' }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['JSON null', { json: 'null' }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['unknown field', { json: { prompt: 'x', promt: 'y' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['__proto__ field', { json: '{"prompt":"x","__proto__":{"steps":99}}' }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['missing prompt', { json: { seed: 1 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['prompt is a number', { json: { prompt: 42 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['prompt too long', { json: { prompt: 'a'.repeat(2001) } }, 400, 'ERR_ONESTEP_LIMIT'],
      ['steps 0', { json: { prompt: 'x', steps: 0 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['steps over the limit', { json: { prompt: 'x', steps: 51 } }, 400, 'ERR_ONESTEP_LIMIT'],
      ['steps 1.5', { json: { prompt: 'x', steps: 1.5 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['steps as a string', { json: { prompt: 'x', steps: '2' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['width over the limit', { json: { prompt: 'x', width: 2048 } }, 400, 'ERR_ONESTEP_LIMIT'],
      ['width not a multiple the model takes', { json: { prompt: 'x', width: 100 } }, 400, 'ERR_ONESTEP_ARGUMENT'],
      ['batch over the limit', { json: { prompt: 'x', batchSize: 5 } }, 400, 'ERR_ONESTEP_LIMIT'],
      ['negative seed', { json: { prompt: 'x', seed: -1 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['seed beyond 2^64', { json: { prompt: 'x', seed: '18446744073709551616' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['huge guidance', { json: { prompt: 'x', guidanceScale: 1e9 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['unknown scheduler', { json: { prompt: 'x', scheduler: 'heun' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['strength without image', { json: { prompt: 'x', strength: 0.5 } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['image not base64', { json: { prompt: 'x', image: 'not base64!' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['image not a PNG', { json: { prompt: 'x', image: Buffer.from('GIF89a............................').toString('base64') } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['image a JPEG data URL', { json: { prompt: 'x', image: 'data:image/jpeg;base64,/9j/4AAQ' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
      ['image declaring 100000x100000', { json: { prompt: 'x', image: ihdr(100000, 100000) } }, 400, 'ERR_ONESTEP_LIMIT'],
      ['image with a header and no data', { json: { prompt: 'x', image: ihdr(64, 64) } }, 400, 'ERR_ONESTEP_ARGUMENT'],
      ['format gif', { json: { prompt: 'x', format: 'gif' } }, 400, 'ERR_ONESTEP_BAD_REQUEST'],
    ];
    for (const [name, req, status, code] of cases) {
      it(`${name} -> ${status} ${code}`, async () => {
        assertJsonError(await request(`${s.url}generate`, { method: 'POST', ...req }), status, code);
      });
    }

    it('unknown path -> 404, wrong method -> 405 with Allow', async () => {
      assertJsonError(await request(`${s.url}nope`), 404, 'ERR_ONESTEP_NOT_FOUND');
      assertJsonError(await request(`${s.url}..%2f..%2fetc%2fpasswd`), 404, 'ERR_ONESTEP_NOT_FOUND');
      const r = await request(`${s.url}generate`);
      assertJsonError(r, 405, 'ERR_ONESTEP_METHOD');
      assert.strictEqual(r.headers.allow, 'POST');
    });

    const raw = (text) =>
      new Promise((resolve, reject) => {
        const sock = net.connect(s.server.address.port, '127.0.0.1');
        let data = '';
        sock.on('data', (d) => {
          data += d;
          if (/\r\n\r\n[\s\S]*\}$/.test(data)) sock.end();
        });
        sock.on('end', () => resolve(data));
        sock.on('error', reject);
        sock.write(text);
      });

    it('malformed HTTP and request targets -> 400 JSON, and the server carries on', async () => {
      const garbage = await raw('GARBAGE / HTTP/9.9\r\n\x00\x01\r\n\r\n');
      assert.match(garbage, /^HTTP\/1\.1 400 /);
      assert.match(garbage, /"code":"ERR_ONESTEP_BAD_HTTP"/);
      const target = await raw('GET http://[zz/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      assert.match(target, /^HTTP\/1\.1 400 [\s\S]*"code":"ERR_ONESTEP_BAD_REQUEST"/);
      const upgrade = await raw('GET http://[zz/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      assert.match(upgrade, /^HTTP\/1\.1 400 [\s\S]*"code":"ERR_ONESTEP_BAD_REQUEST"/);
      assert.strictEqual((await request(`${s.url}health`)).status, 200);
    });

    it('fresh random garbage bodies: always a 4xx JSON error or a 200, never a 5xx', async () => {
      const valid = { prompt: 'a fox', seed: 1, steps: 1, width: 64, height: 64, guidanceScale: 0, batchSize: 1 };
      const junk = () => rng.pick([null, true, -1, 0.5, 1e308, '', 'x'.repeat(rng.int(50)), [], {}, [1, 'a'], { a: 1 }, rng.int(100000)]);
      const statuses = new Map();
      for (let i = 0; i < 60; i++) {
        let body;
        const kind = rng.int(4);
        if (kind === 0) {
          // a valid body with random values in random fields
          const o = { ...valid };
          for (const k of Object.keys(o)) if (rng.int(3) === 0) o[k] = junk();
          body = JSON.stringify(o);
        } else if (kind === 1) {
          // truncated at a random point
          const t = JSON.stringify(valid);
          body = t.slice(0, rng.int(t.length));
        } else if (kind === 2) {
          // random bytes
          body = Buffer.from(Array.from({ length: rng.int(200) }, () => rng.int(256)));
        } else {
          // deep nesting
          const d = 1 + rng.int(100000);
          body = '['.repeat(d) + ']'.repeat(rng.int(2) ? d : 0);
        }
        const r = await request(`${s.url}generate`, { method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
        statuses.set(r.status, (statuses.get(r.status) || 0) + 1);
        assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `status ${r.status} for ${String(body).slice(0, 200)}: ${r.body}`);
        if (r.status !== 200) assert.ok(r.json().error.code, r.body.toString());
      }
      assert.strictEqual((await request(`${s.url}health`)).status, 200);
    });
  });

  describe('limits', () => {
    let small;
    before(async () => {
      small = await startServer({ limits: { maxBodyBytes: 64 * 1024, maxWidth: 64, maxHeight: 64, maxSteps: 4, maxBatch: 2 } });
    });
    after(() => small.server.close());

    it('a body over maxBodyBytes -> 413 (declared length, or chunked without one)', async () => {
      const big = JSON.stringify({ prompt: 'x', image: 'A'.repeat(200 * 1024) });
      assertJsonError(await request(`${small.url}generate`, { method: 'POST', json: big }), 413, 'ERR_ONESTEP_BODY_TOO_LARGE');
      const chunked = await new Promise((resolve, reject) => {
        const http = require('http');
        const req = http.request(`${small.url}generate`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' }, agent: false }, (res) => {
          let d = '';
          res.on('data', (c) => (d += c));
          res.on('end', () => resolve({ status: res.statusCode, body: d }));
        });
        req.on('error', reject);
        req.write(big.slice(0, 40 * 1024));
        setTimeout(() => req.end(big.slice(40 * 1024, 100 * 1024)), 20);
      });
      assert.strictEqual(chunked.status, 413, chunked.body);
      assert.strictEqual((await request(`${small.url}health`)).status, 200);
    });

    it('size, steps and batch limits are the server\'s, not the model\'s', async () => {
      assertJsonError(await request(`${small.url}generate`, { method: 'POST', json: { prompt: 'x', width: 128 } }), 400, 'ERR_ONESTEP_LIMIT');
      assertJsonError(await request(`${small.url}generate`, { method: 'POST', json: { prompt: 'x', steps: 5 } }), 400, 'ERR_ONESTEP_LIMIT');
      assertJsonError(await request(`${small.url}generate`, { method: 'POST', json: { prompt: 'x', batchSize: 3 } }), 400, 'ERR_ONESTEP_LIMIT');
      assert.strictEqual((await request(`${small.url}generate`, { method: 'POST', json: { prompt: 'x', steps: 4, batchSize: 2 } })).status, 200);
    });

    it('bad options are refused when the server is created', () => {
      const { createServer } = require('../..');
      assert.throws(() => createServer({}), /pipeline/);
      assert.throws(() => createServer({ pipeline: small.server.service.pipeline, limits: { maxSteps: 0 } }), /maxSteps/);
      assert.throws(() => createServer({ pipeline: small.server.service.pipeline, limits: { maxStep: 3 } }), /unknown limit 'maxStep'/);
      assert.throws(() => createServer({ pipeline: small.server.service.pipeline, apiKey: 'short' }), /at least 8/);
      assert.throws(() => createServer({ pipeline: small.server.service.pipeline, port: 70000 }), /port/);
    });
  });

  describe('who may call', () => {
    let keyed;
    const key = `k-${new Rng().int(2 ** 31)}-${Date.now()}`;
    before(async () => {
      keyed = await startServer({ apiKey: key, corsOrigins: ['http://app.example'] });
    });
    after(() => keyed.server.close());

    it('with an API key: missing or wrong -> 401; Bearer or X-API-Key -> 200; page and /health stay open', async () => {
      const r = await request(`${keyed.url}info`);
      assertJsonError(r, 401, 'ERR_ONESTEP_UNAUTHORIZED');
      assert.strictEqual(r.headers['www-authenticate'], 'Bearer');
      assertJsonError(await request(`${keyed.url}info`, { headers: { Authorization: `Bearer ${key}x` } }), 401);
      assertJsonError(await request(`${keyed.url}generate`, { method: 'POST', json: { prompt: 'x' } }), 401);
      assert.strictEqual((await request(`${keyed.url}info`, { headers: { Authorization: `Bearer ${key}` } })).json().apiKeyRequired, true);
      assert.strictEqual((await request(`${keyed.url}generate`, { method: 'POST', json: { prompt: 'x' }, headers: { 'X-API-Key': key } })).status, 200);
      assert.strictEqual((await request(keyed.url)).status, 200);
      assert.strictEqual((await request(`${keyed.url}health`)).status, 200);
      // the query parameter is for WebSocket upgrades only
      assertJsonError(await request(`${keyed.url}info?key=${key}`), 401);
    });

    it('a foreign Host header (DNS rebinding) -> 403; loopback names pass', async () => {
      assertJsonError(await request(`${s.url}info`, { headers: { Host: 'evil.example:80' } }), 403, 'ERR_ONESTEP_FORBIDDEN');
      for (const host of ['localhost', `127.0.0.1:${s.server.address.port}`, '[::1]:80', 'app.localhost']) {
        assert.strictEqual((await request(`${s.url}health`, { headers: { Host: host } })).status, 200, host);
      }
    });

    it('browser calls from another origin -> 403 unless allowed by CORS (with a preflight)', async () => {
      assertJsonError(await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x' }, headers: { Origin: 'http://evil.example' } }), 403, 'ERR_ONESTEP_FORBIDDEN');
      const same = await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'x' }, headers: { Origin: s.url.slice(0, -1) } });
      assert.strictEqual(same.status, 200);
      const pre = await request(`${keyed.url}generate`, { method: 'OPTIONS', headers: { Origin: 'http://app.example', 'Access-Control-Request-Method': 'POST' } });
      assert.strictEqual(pre.status, 204);
      assert.strictEqual(pre.headers['access-control-allow-origin'], 'http://app.example');
      assert.match(pre.headers['access-control-allow-headers'], /Authorization/);
      const r = await request(`${keyed.url}generate`, { method: 'POST', json: { prompt: 'x' }, headers: { Origin: 'http://app.example', Authorization: `Bearer ${key}` } });
      assert.strictEqual(r.status, 200);
      assert.strictEqual(r.headers['access-control-allow-origin'], 'http://app.example');
      assertJsonError(await request(`${keyed.url}generate`, { method: 'OPTIONS', headers: { Origin: 'http://other.example' } }), 403);
    });
  });
});
