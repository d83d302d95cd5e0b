// What made an image travels with it: seeds (one rule, drawn ones recorded), the PNG text chunks
// (the web UIs' `parameters`, onestep's JSON), reading them back, and the warnings of a generation.
'use strict';
const assert = require('assert');
const { loadPipeline, ArgumentError, TorchGenerator } = require('../..');
const { readImageMetadata, parseParameters, formatParameters } = require('../../dist/pipelines/metadata');
const { readTextChunks, withTextChunks } = require('../../dist/pipelines/png');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

describe('pipelines: image metadata and seeds', function () {
  this.timeout(120000);
  let sd21;
  const rng = new Rng();
  before(async () => {
    sd21 = await loadPipeline(fixture('models', 'tiny-sd21'));
  });
  after(() => sd21.dispose());

  it('a drawn seed is recorded and reproduces the image; number, bigint and decimal string are one seed', async () => {
    const [a] = await sd21.generate({ prompt: 'a fox' });
    assert.match(a.seed, /^\d+$/);
    const [b] = await sd21.generate({ prompt: 'a fox', seed: a.seed });
    assert.ok(Buffer.from(a.rgb).equals(Buffer.from(b.rgb)));
    const s = 1 + rng.int(2 ** 31);
    const imgs = await Promise.all([s, BigInt(s), String(s)].map((seed) => sd21.generate({ prompt: 'x', seed })));
    for (const [img] of imgs) assert.ok(Buffer.from(img.rgb).equals(Buffer.from(imgs[0][0].rgb)));
    // the latents are torch's for that seed, also above 2^53
    const big = 2n ** 63n + BigInt(rng.int(1000));
    let init;
    await sd21.generate({ prompt: 'x', seed: big.toString(), trace: (n, d) => n === 'latents_init' && (init = d) });
    assert.deepStrictEqual(Array.from(init), Array.from(new TorchGenerator(big).randn([1, 4, 8, 8])));
    for (const bad of [-1, -1n, '-1', 2n ** 64n, 1.5, 'seven', '']) {
      await assert.rejects(sd21.generate({ prompt: 'x', seed: bad }), (e) => e instanceof ArgumentError && /seed must be an integer in 0\.\.2\^64-1/.test(e.message) && !/\dn\b/.test(e.message), String(bad));
    }
  });

  it('png() writes `parameters` (web UI infotext) and `onestep` (JSON); metadata: false writes none', async () => {
    const [img] = await sd21.generate({ prompt: 'a cabin, at night: snow', negativePrompt: 'blurry', guidanceScale: 2, seed: 77, steps: 2 });
    const m = readImageMetadata(img.png());
    assert.strictEqual(m.onestep.seed, '77');
    assert.deepStrictEqual([m.onestep.steps, m.onestep.sampler, m.onestep.guidanceScale, m.onestep.width, m.onestep.height, m.onestep.model], [2, 'euler_a', 2, 64, 64, 'tiny-sd21']);
    const p = parseParameters(m.parameters);
    assert.strictEqual(p.prompt, 'a cabin, at night: snow');
    assert.strictEqual(p.negativePrompt, 'blurry');
    assert.deepStrictEqual([p.values.Steps, p.values.Sampler, p.values['CFG scale'], p.values.Seed, p.values.Size, p.values.Model], ['2', 'Euler a', '2', '77', '64x64', 'tiny-sd21']);
    assert.deepStrictEqual(readTextChunks(img.png({ metadata: false })), {});
  });

  it('infotext round-trips values with commas and colons, and non-Latin-1 text goes to iTXt', () => {
    const params = { prompt: 'ünïcode 猫, "quoted"', steps: 4, sampler: 'lcm', guidanceScale: 1, seed: '5', rngVariant: 'avx2', width: 512, height: 512, model: 'org/model:v1, x', loras: [{ name: 'a', scale: 0.5 }, { name: 'b', scale: 1 }], batchSize: 1, batchIndex: 0, version: 'onestep 0' };
    const text = formatParameters(params);
    const back = parseParameters(text);
    assert.strictEqual(back.prompt, params.prompt);
    assert.strictEqual(back.values.Model, 'org/model:v1, x');
    assert.strictEqual(back.values.Lora, 'a: 0.5, b: 1');
    const { PNG } = require('pngjs');
    const png = PNG.sync.write(new PNG({ width: 2, height: 2 }));
    const tagged = withTextChunks(png, { parameters: text, plain: 'latin-1 text' });
    assert.deepStrictEqual(readTextChunks(tagged), { parameters: text, plain: 'latin-1 text' });
    assert.ok(tagged.includes(Buffer.from('iTXt')) && tagged.includes(Buffer.from('tEXt')));
    assert.strictEqual(PNG.sync.read(tagged).width, 2, 'still a valid PNG');
  });

  it('a prompt past the text encoder window warns (onWarning and image.warnings) naming the dropped count', async () => {
    const words = Array.from({ length: 100 }, (_, i) => `w${i}`).join(' ');
    const got = [];
    const [img] = await sd21.generate({ prompt: words, seed: 1, onWarning: (w) => got.push(w) });
    assert.strictEqual(got.length, 1);
    assert.match(got[0], /the prompt has (\d+) tokens; the text encoder reads 75, so the last (\d+) were dropped/);
    const [, n, d] = /has (\d+) tokens.*last (\d+)/.exec(got[0]);
    assert.strictEqual(Number(n) - 75, Number(d));
    assert.deepStrictEqual(img.warnings, got);
    const [short] = await sd21.generate({ prompt: 'a fox', seed: 1 });
    assert.deepStrictEqual(short.warnings, []);
  });
});
