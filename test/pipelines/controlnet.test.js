// ControlNet through the pipeline API (the goldens check the numbers against diffusers): a
// control image steers the image, scale 0 gives the plain image, a ControlNet outside its window
// costs nothing and changes nothing, several ControlNets sum, and every misuse is a typed error.
'use strict';
const assert = require('assert');
const { PNG } = require('pngjs');
const { loadPipeline, ArgumentError, ConfigError } = require('../..');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

const model = (m) => fixture('models', m);

/** A scribble: white strokes on black, as PNG bytes. */
function scribble(rng, w, h) {
  const png = new PNG({ width: w, height: h });
  png.data.fill(0);
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  for (let s = 0; s < 6; s++) {
    let x = rng.int(w);
    let y = rng.int(h);
    for (let k = 0; k < 40; k++) {
      x = Math.max(0, Math.min(w - 1, x + rng.int(3) - 1));
      y = Math.max(0, Math.min(h - 1, y + rng.int(3) - 1));
      const o = (y * w + x) * 4;
      png.data[o] = png.data[o + 1] = png.data[o + 2] = 255;
    }
  }
  return PNG.sync.write(png);
}

const relL2 = (a, b) => {
  let n = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    n += (a[i] - b[i]) ** 2;
    d += b[i] ** 2;
  }
  return Math.sqrt(n / d);
};

describe('pipelines: ControlNet', function () {
  this.timeout(120000);
  const rng = new Rng();
  let pipe;
  let xl;
  let img;
  before(async () => {
    pipe = await loadPipeline(model('tiny-sd15'), { controlnet: model('tiny-sd15-controlnet') });
    img = scribble(rng, 64, 64);
  });
  after(async () => {
    await pipe?.dispose();
    await xl?.dispose();
  });

  const gen = async (control, extra = {}) => (await pipe.generate({ prompt: 'a cabin', seed: 11, steps: 2, scheduler: 'lcm', guidanceScale: 1, returnLatents: true, control, ...extra }))[0];

  it('the control image steers the image; at scale 0 it is the plain image, byte for byte', async () => {
    assert.strictEqual(pipe.controlNets.length, 1);
    const plain = await gen(undefined);
    const controlled = await gen({ image: img });
    const zero = await gen({ image: img, scale: 0 });
    assert.ok(relL2(controlled.latents, plain.latents) > 1e-3, 'the ControlNet changes the result');
    assert.ok(Buffer.from(zero.rgb).equals(Buffer.from(plain.rgb)));
    assert.strictEqual(controlled.params.controlnets[0].scale, 1);
    assert.match(require('../../dist/pipelines/metadata').formatParameters(controlled.params), /ControlNet 0: "Model: .*tiny-sd15-controlnet, Weight: 1, Guidance Start: 0, Guidance End: 1"/);
  });

  it('outside its window a ControlNet is left out of the step graph, with the result diffusers gets running it at scale 0', async () => {
    const control = { image: img, end: 0.5 };
    for (const g of pipe.stepGraphs.values()) g.dispose(); // white box: which step graphs the run builds
    pipe.stepGraphs.clear();
    const skipped = await gen(control, { steps: 4 });
    const keys = [...pipe.stepGraphs.keys()].map((k) => JSON.parse(k).controls);
    assert.deepStrictEqual(keys.sort(), [[], [0]], 'steps 0-1 with the ControlNet, steps 2-3 without it');
    // a traced run keeps it in every step (at scale 0 outside the window), as diffusers does
    let traced = 0;
    const kept = await gen(control, { steps: 4, trace: (n) => /^step\d+_controlnet_mid$/.test(n) && traced++ });
    assert.strictEqual(traced, 4);
    assert.ok(Buffer.from(skipped.rgb).equals(Buffer.from(kept.rgb)));
    assert.ok(relL2(skipped.latents, (await gen(undefined, { steps: 4 })).latents) > 1e-4, 'it acted on the first half');
  });

  it('lowMemory: one step graph at a time across the window, the ControlNet\'s graphs dropped after the loop, the same image', async () => {
    const low = await loadPipeline(model('tiny-sd15'), { controlnet: model('tiny-sd15-controlnet'), lowMemory: true });
    try {
      const control = { image: img, end: 0.5 };
      const opts = { prompt: 'a cabin', seed: 11, steps: 4, scheduler: 'lcm', guidanceScale: 1, control };
      const counts = [];
      const [got] = await low.generate({ ...opts, onProgress: (e) => e.stage === 'denoise' && counts.push(low.stepGraphs.size) });
      const want = await gen(control, { steps: 4 });
      assert.ok(Buffer.from(got.rgb).equals(Buffer.from(want.rgb)), 'the image differs with lowMemory');
      assert.ok(counts.length >= 4 && counts.every((n) => n <= 1), `step graphs held during the loop: ${counts}`);
      assert.deepStrictEqual([low.stepGraphs.size, low.controlNets[0].graphs?.size ?? 0], [0, 0]);
    } finally {
      await low.dispose();
    }
  });

  it('several ControlNets sum their residuals (MultiControlNet): the same one twice at s equals once at 2s', async () => {
    const twice = await gen([{ image: img, scale: 0.4 }, { image: img, scale: 0.4 }]);
    const once = await gen({ image: img, scale: 0.8 });
    assert.ok(relL2(twice.latents, once.latents) < 1e-5, `${relL2(twice.latents, once.latents)}`);
  });

  it('the output size comes from the control image when none is given; img2img takes a control too', async () => {
    const [small] = await pipe.generate({ prompt: 'x', seed: 1, steps: 1, scheduler: 'lcm', guidanceScale: 1, control: { image: scribble(rng, 48, 43) } });
    assert.deepStrictEqual([small.width, small.height], [48, 40]);
    const [i2i] = await pipe.generate({ prompt: 'x', seed: 1, steps: 2, scheduler: 'lcm', guidanceScale: 1, image: scribble(rng, 64, 64), control: { image: img, guessMode: true } });
    assert.deepStrictEqual([i2i.width, i2i.height], [64, 64]);
  });

  it('misuse is a typed error naming the problem, before any work', async () => {
    const bad = [
      [{ image: img, scale: -1 }, /control\.scale must be in \[0, 10\]/],
      [{ image: img, start: 0.6, end: 0.4 }, /start 0\.6 must be below end 0\.4/],
      [{ image: img, index: 3 }, /control\.index must be an integer in 0\.\.0/],
      [{ scale: 1 }, /control\.image is required/],
      [[{ image: img, guessMode: true }, { image: img }], /guessMode must be the same/],
      [{ image: img.subarray(0, img.length - 20) }, /truncated PNG/],
    ];
    for (const [control, re] of bad) await assert.rejects(gen(control), (e) => e instanceof ArgumentError && re.test(e.message), JSON.stringify(control).slice(0, 80));
    const plain = await loadPipeline(model('tiny-sd15'));
    try {
      await assert.rejects(plain.generate({ prompt: 'x', control: { image: img } }), (e) => e instanceof ArgumentError && /has no ControlNet/.test(e.message));
      // a ControlNet made for another model
      await assert.rejects(plain.loadControlNet(model('tiny-sdxl-controlnet')), (e) => e instanceof ConfigError && /is for another model/.test(e.message));
      assert.strictEqual(plain.controlNets.length, 0);
      const cn = await plain.loadControlNet(model('tiny-sd15-controlnet'));
      assert.strictEqual(plain.controlNets[0], cn);
      const [out] = await plain.generate({ prompt: 'x', seed: 2, steps: 1, scheduler: 'lcm', guidanceScale: 1, control: { image: img, model: cn } });
      assert.strictEqual(out.width, 64);
    } finally {
      await plain.dispose();
    }
    await assert.rejects(loadPipeline(model('tiny-sd15'), { controlnet: model('tiny-sdxl-controlnet') }), (e) => e instanceof ConfigError && /SDXL ControlNet/.test(e.message));
  });

  it('with a LoRA fused (LCM-LoRA style): both act, and unloading the LoRA gives the ControlNet-only image back', async () => {
    const lora = fixture('lora', 'sd15_lora_kohya_full.safetensors');
    const p = await loadPipeline(model('tiny-sd15'), { controlnet: model('tiny-sd15-controlnet'), loras: [{ path: lora, name: 'lcm' }] });
    try {
      const both = (await p.generate({ prompt: 'a cabin', seed: 11, steps: 2, scheduler: 'lcm', guidanceScale: 1, control: { image: img } }))[0];
      const cnOnly = await gen({ image: img });
      assert.ok(!Buffer.from(both.rgb).equals(Buffer.from(cnOnly.rgb)), 'the LoRA acts');
      await p.unloadLoras();
      const back = (await p.generate({ prompt: 'a cabin', seed: 11, steps: 2, scheduler: 'lcm', guidanceScale: 1, control: { image: img } }))[0];
      assert.ok(Buffer.from(back.rgb).equals(Buffer.from(cnOnly.rgb)));
    } finally {
      await p.dispose();
    }
  });

  it('SDXL: the ControlNet gets the added conditioning (text_embeds, time ids) too', async () => {
    xl = await loadPipeline(model('tiny-sdxl'), { controlnet: [model('tiny-sdxl-controlnet')] });
    const plain = (await xl.generate({ prompt: 'x', seed: 3, returnLatents: true }))[0];
    const c = (await xl.generate({ prompt: 'x', seed: 3, returnLatents: true, control: { image: img, scale: 0.7 } }))[0];
    assert.ok(relL2(c.latents, plain.latents) > 1e-3);
  });
});
