// POST /v1/images/generations answers in OpenAI's shape (b64_json, or url as a data: URL),
// takes the fields OpenAI clients send, and reports errors as OpenAI does.
'use strict';
const assert = require('assert');
const { Rng } = require('../helpers/random');
const { startServer, request, pngSize } = require('./helpers');

describe('server: OpenAI-compatible images API', function () {
  this.timeout(60000);
  const rng = new Rng();
  let s;
  const post = (json, headers) => request(`${s.url}v1/images/generations`, { method: 'POST', json, headers });
  before(async () => {
    s = await startServer();
  });
  after(() => s.server.close());

  it('n images of the asked size as b64_json (the default)', async () => {
    const t = Math.floor(Date.now() / 1000);
    const r = await post({ model: 'whatever', prompt: 'a red fox', n: 2, size: '64x32', quality: 'standard', user: 'u1' });
    assert.strictEqual(r.status, 200, r.body.toString());
    const body = r.json();
    assert.ok(body.created >= t);
    assert.strictEqual(body.data.length, 2);
    for (const d of body.data) assert.deepStrictEqual(pngSize(d.b64_json), [64, 32]);
  });

  it("response_format 'url' gives data: URLs; seed, steps, negative_prompt and guidance_scale pass through", async () => {
    const seed = rng.int(2 ** 31);
    const req = { prompt: 'a fox', response_format: 'url', seed, steps: 2, negative_prompt: 'blurry', guidance_scale: 2 };
    const a = (await post(req)).json();
    assert.match(a.data[0].url, /^data:image\/png;base64,/);
    const b = (await post({ ...req, response_format: 'b64_json' })).json();
    assert.strictEqual(a.data[0].url.split(',')[1], b.data[0].b64_json);
    const plain = (await request(`${s.url}generate`, { method: 'POST', json: { prompt: 'a fox', seed, steps: 2, negativePrompt: 'blurry', guidanceScale: 2 } })).json();
    assert.strictEqual(plain.images[0].b64_png, b.data[0].b64_json);
  });

  for (const [name, body, re] of [
    ['no prompt', { n: 1 }, /'prompt' is required/],
    ['bad size', { prompt: 'x', size: '64' }, /'size' must be 'WIDTHxHEIGHT'/],
    ['size over the limit', { prompt: 'x', size: '4096x4096' }, /limit/],
    ['n over the limit', { prompt: 'x', n: 10 }, /'n' is 10; the limit is 4/],
    ['unknown response_format', { prompt: 'x', response_format: 'jpeg' }, /response_format/],
    ['output_format webp', { prompt: 'x', output_format: 'webp' }, /output_format/],
    ['stream', { prompt: 'x', stream: true }, /stream/],
    ['unknown field', { prompt: 'x', colour: 'red' }, /unknown field 'colour'/],
  ]) {
    it(`${name} -> 400 in OpenAI's error shape`, async () => {
      const r = await post(body);
      assert.strictEqual(r.status, 400);
      const e = r.json().error;
      assert.strictEqual(e.type, 'invalid_request_error');
      assert.strictEqual(e.param, null);
      assert.match(e.code, /^ERR_ONESTEP_/);
      assert.match(e.message, re);
    });
  }

  it('GET /v1/models lists the served model', async () => {
    const r = (await request(`${s.url}v1/models`)).json();
    assert.deepStrictEqual(r, { object: 'list', data: [{ id: 'tiny-sd21', object: 'model', created: 0, owned_by: 'onestep' }] });
  });
});
