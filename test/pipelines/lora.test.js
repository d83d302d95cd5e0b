// LoRA through the pipeline API: loadPipeline(dir, { loras }), loadLoras / setLoraScales /
// unloadLoras, and unloading gives the images of a pipeline that never had a LoRA, byte for byte.
'use strict';
const assert = require('assert');
const { loadPipeline, LoraError } = require('../..');
const { fixture } = require('../helpers/fixtures');

const sd15 = () => fixture('models', 'tiny-sd15');
const lora = (f) => fixture('lora', `${f}.safetensors`);
const rgb = async (pipe, seed = 5) => Buffer.from((await pipe.generate({ prompt: 'a cat in a hat', seed, steps: 2, scheduler: 'lcm', guidanceScale: 1 }))[0].rgb);

describe('pipelines: LoRA', function () {
  this.timeout(120000);
  let plain, pipe, base;
  before(async () => {
    plain = await loadPipeline(sd15());
    base = await rgb(plain);
  });
  after(() => {
    plain?.dispose();
    pipe?.dispose();
  });

  it('loadPipeline({ loras }) is loadLoras after load; unloadLoras gives the plain images back, byte for byte', async () => {
    pipe = await loadPipeline(sd15(), { loras: [{ path: lora('sd15_lora_kohya_full'), name: 'lcm' }, { path: lora('sd15_lora_kohya_te'), scale: 0.8 }] });
    assert.deepStrictEqual(pipe.loraNames, ['lcm', 'sd15_lora_kohya_te']);
    const fused = await rgb(pipe);
    assert.ok(!fused.equals(base), 'the LoRA changes the image');
    const report = await plain.loadLoras([{ path: lora('sd15_lora_kohya_full'), name: 'lcm' }, { path: lora('sd15_lora_kohya_te'), scale: 0.8 }]);
    assert.deepStrictEqual(report.adapters.map((a) => [a.name, a.format, a.scale, a.skipped.length]), [['lcm', 'kohya', 1, 0], ['sd15_lora_kohya_te', 'kohya', 0.8, 0]]);
    assert.ok(report.fused.unet > 0 && report.fused.text_encoder > 0);
    assert.ok((await rgb(plain)).equals(fused));

    await pipe.setLoraScales({ lcm: 0.25 });
    const quarter = await rgb(pipe);
    assert.ok(!quarter.equals(fused));
    await pipe.setLoraScales({ lcm: 1 });
    assert.ok((await rgb(pipe)).equals(fused), 'back to scale 1: the same image');

    await pipe.unloadLoras(['sd15_lora_kohya_te']);
    assert.deepStrictEqual(pipe.loraNames, ['lcm']);
    await pipe.unloadLoras();
    assert.deepStrictEqual(pipe.loraNames, []);
    assert.ok((await rgb(pipe)).equals(base), 'unloaded: the plain pipeline\'s image');
    await plain.unloadLoras();
    assert.ok((await rgb(plain)).equals(base));
  });

  it('a failed load (strict, or a LoRA for another model) changes nothing', async () => {
    const p = await loadPipeline(sd15());
    try {
      await p.loadLoras([{ path: lora('sd15_lora_peft'), scale: 0.5 }]);
      const before = await rgb(p);
      await assert.rejects(p.loadLoras([{ path: lora('sdxl_lora_diffusers') }], { strict: true }), (e) => e instanceof LoraError && /text_encoder_2/.test(e.message));
      await assert.rejects(p.loadLoras([{ path: lora('sdxl_lora_kohya_diffusers_names') }]), (e) => e instanceof LoraError && /another model/.test(e.message));
      assert.deepStrictEqual(p.loraNames, ['sd15_lora_peft']);
      assert.ok((await rgb(p)).equals(before));
    } finally {
      p.dispose();
    }
    await assert.rejects(loadPipeline(sd15(), { loras: [{ path: lora('sdxl_lora_peft') }], strictLoras: true }), LoraError);
  });

  it('SDXL: one LoRA file reaches the UNet and both text encoders', async () => {
    const xl = await loadPipeline(fixture('models', 'tiny-sdxl'));
    try {
      const report = await xl.loadLoras([{ path: lora('sdxl_lora_kohya'), scale: 0.6 }], { strict: true });
      assert.deepStrictEqual(report.adapters[0].byComponent, { unet: 258, text_encoder: 12, text_encoder_2: 18 }); // README-lora-sdxl.md
      const peft = await xl.loadLoras([{ path: lora('sdxl_lora_peft'), scale: 0.6 }], { strict: true });
      assert.deepStrictEqual(peft.adapters[1].byComponent, { unet: 199, text_encoder: 8, text_encoder_2: 12 });
    } finally {
      xl.dispose();
    }
  });
});
