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
    // re-fused in place: nothing derived from the old weights survives (conv kernel layouts, Winograd forms)
    const fresh = await loadPipeline(sd15(), { loras: [{ path: lora('sd15_lora_kohya_full'), name: 'lcm', scale: 0.25 }, { path: lora('sd15_lora_kohya_te'), scale: 0.8 }] });
    try {
      assert.ok((await rgb(fresh)).equals(quarter), 'scale 0.25 by re-fusion: the image of a pipeline loaded at 0.25');
    } finally {
      fresh.dispose();
    }
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

  it('tensors that do not apply: one short warning once the fusion worked; a failed load warns nothing and only throws', async () => {
    const fs = require('fs');
    const os = require('os');
    const path = require('path');
    const { openSafetensors, saveSafetensors } = require('../..');
    const src = openSafetensors(lora('sd15_lora_kohya_te'));
    const tensors = {};
    for (const n of src.names()) tensors[n] = { dtype: 'F32', shape: src.info(n).shape, data: src.float32(n) };
    src.close();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-lora-warn-'));
    const file = path.join(dir, 'partly.safetensors');
    const r = { dtype: 'F32', shape: [2, 4], data: new Float32Array(8).fill(0.1) };
    await saveSafetensors(file, { ...tensors, 'lora_vae_decoder_conv_in.lora_down.weight': r, 'lora_vae_decoder_conv_in.lora_up.weight': r });
    const processWarnings = [];
    const onProcessWarning = (w) => w.code === 'ONESTEP_LORA_SKIPPED' && processWarnings.push(w.message);
    process.on('warning', onProcessWarning);
    const p = await loadPipeline(sd15());
    try {
      const got = [];
      await p.loadLoras([{ path: file }], { onWarning: (w) => got.push(w) });
      assert.strictEqual(got.length, 1);
      assert.match(got[0], /2 of \d+ tensors were not applied: 2 unknown kohya prefix/);
      assert.ok(got[0].length < 400, `one short line: ${got[0].length} characters`);
      // an SDXL LoRA on SD1.5: the load fails (shapes); nothing is warned, the weights are unchanged
      const before = await rgb(p);
      const failed = [];
      await assert.rejects(p.loadLoras([{ path: lora('sdxl_lora_kohya') }], { onWarning: (w) => failed.push(w) }), LoraError);
      await new Promise((res) => setImmediate(res));
      assert.deepStrictEqual([failed, processWarnings], [[], []]);
      assert.ok((await rgb(p)).equals(before));
    } finally {
      process.off('warning', onProcessWarning);
      await p.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
