// Single-file checkpoints, from the header alone: the family and every architecture field the
// fixtures' index.json records; foreign and corrupted files get clear errors.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { detectSingleFile } = require('../../dist/single_file');
const { ConfigError, FileNotFoundError, openSafetensors, saveSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');

const sf = (m) => fixture('single_file', `${m}.safetensors`);
const readJson = (f) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('single file: detection from the header', function () {
  this.timeout(60000);
  let dir, index;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-sf-'));
    index = readJson(fixture('single_file', 'index.json'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const m of ['tiny-sd15', 'tiny-sd21', 'tiny-sdxl']) {
    it(`${m}: family and architecture as index.json and the diffusers configs say`, () => {
      const entry = index.files[`${m}.safetensors`];
      const r = detectSingleFile(sf(m));
      assert.strictEqual(r.family, entry.detected.family);
      assert.deepStrictEqual(r.unmatched, []);
      const total = Object.values(r.tensors).reduce((a, b) => a + b, 0);
      assert.strictEqual(total, entry.verification['v0.40.0']?.tensors_equal ?? total);
      const u = r.derived.unet;
      const d = entry.detected.unet;
      assert.deepStrictEqual(
        [u.block_out_channels, u.layers_per_block, u.cross_attention_dim, u.in_channels, u.out_channels, u.use_linear_projection],
        [d.block_out_channels, d.layers_per_block, d.context_dim, d.in_channels, d.out_channels, d.use_linear_projection],
      );
      assert.deepStrictEqual(u.down_block_types.map((t) => t.startsWith('CrossAttn')), d.attention_per_level);
      // every derived field equals the diffusers folder's config (scalars there mean "every level")
      const model = fixture('models', m);
      for (const [c, fields] of Object.entries(r.derived)) {
        const cfg = readJson(path.join(model, c, 'config.json'));
        for (const [k, v] of Object.entries(fields)) {
          if (cfg[k] === undefined || cfg[k] === null) continue;
          const want = Array.isArray(v) && typeof cfg[k] === 'number' ? v.map(() => cfg[k]) : cfg[k];
          assert.deepStrictEqual(v, want, `${m} ${c}.${k}`);
        }
      }
      if (m === 'tiny-sdxl') assert.strictEqual(u.addition_time_embed_dim, 8);
    });
  }

  it('reads no tensor data: a file with the real header and garbage data is detected the same', () => {
    const src = sf('tiny-sdxl');
    const bytes = fs.readFileSync(src);
    const n = Number(bytes.readBigUInt64LE(0));
    const garbage = Buffer.concat([bytes.subarray(0, 8 + n), Buffer.alloc(bytes.length - 8 - n, 0xff)]);
    const f = path.join(dir, 'garbage.safetensors');
    fs.writeFileSync(f, garbage);
    const a = detectSingleFile(src);
    const b = detectSingleFile(f);
    assert.deepStrictEqual({ ...b, file: '' }, { ...a, file: '' });
  });

  it('SD-Turbo\'s sgm layout (OpenCLIP under conditioner.embedders.0.model.) is SD2; extra training keys are ignored', async () => {
    const src = openSafetensors(sf('tiny-sd21'));
    const tensors = {};
    for (const k of src.names()) {
      const info = src.info(k);
      tensors[k.replace(/^cond_stage_model\.model\./, 'conditioner.embedders.0.model.')] = { dtype: info.dtype, shape: info.shape, data: src.tensor(k) };
    }
    src.close();
    tensors['denoiser.sigmas'] = { dtype: 'F32', shape: [1000], data: new Float32Array(1000).fill(1) };
    tensors['model_ema.decay'] = { dtype: 'F32', shape: [], data: new Float32Array([0.999]) };
    tensors['conditioner.embedders.0.model.logit_scale'] = { dtype: 'F32', shape: [], data: new Float32Array([1]) };
    tensors['something.unexpected'] = { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) };
    const f = path.join(dir, 'sgm.safetensors');
    await saveSafetensors(f, tensors);
    const r = detectSingleFile(f);
    assert.strictEqual(r.family, 'sd2-sgm');
    assert.deepStrictEqual(r.ignored.sort(), ['conditioner.embedders.0.model.logit_scale', 'denoiser.sigmas', 'model_ema.decay']);
    assert.deepStrictEqual(r.unmatched, ['something.unexpected']);
    assert.deepStrictEqual(r.derived, detectSingleFile(sf('tiny-sd21')).derived);
  });

  it('foreign, refiner-like, corrupted and missing files get clear, typed errors', async () => {
    assert.throws(() => detectSingleFile(fixture('lora', 'sd15_lora_kohya_full.safetensors')), (e) => e instanceof ConfigError && /not a single-file checkpoint.*not a Stable Diffusion checkpoint/.test(e.message));
    assert.throws(() => detectSingleFile(fixture('models', 'tiny-sd15', 'unet', 'diffusion_pytorch_model.safetensors')), (e) => e instanceof ConfigError && /keys start with/.test(e.message));
    // an SDXL refiner: one OpenCLIP encoder under embedders.0 and label_emb
    const src = openSafetensors(sf('tiny-sdxl'));
    const tensors = {};
    for (const k of src.names()) {
      if (k.startsWith('conditioner.embedders.0.')) continue;
      const info = src.info(k);
      tensors[k.replace(/^conditioner\.embedders\.1\./, 'conditioner.embedders.0.')] = { dtype: info.dtype, shape: info.shape, data: src.tensor(k) };
    }
    src.close();
    const refiner = path.join(dir, 'refiner.safetensors');
    await saveSafetensors(refiner, tensors);
    assert.throws(() => detectSingleFile(refiner), (e) => e instanceof ConfigError && /refiner/.test(e.message));
    // truncated: the header promises more than the file holds
    const bytes = fs.readFileSync(sf('tiny-sd15'));
    const cut = path.join(dir, 'cut.safetensors');
    fs.writeFileSync(cut, bytes.subarray(0, 5000));
    assert.throws(() => detectSingleFile(cut), (e) => /^ERR_ONESTEP_SAFETENSORS/.test(e.code));
    assert.throws(() => detectSingleFile(path.join(dir, 'nope.safetensors')), FileNotFoundError);
    // a structural problem: a UNet level missing its downsampler
    const t2 = {};
    const s2 = openSafetensors(sf('tiny-sd15'));
    for (const k of s2.names()) {
      if (k.startsWith('model.diffusion_model.input_blocks.3.')) continue;
      const info = s2.info(k);
      t2[k] = { dtype: info.dtype, shape: info.shape, data: s2.tensor(k) };
    }
    s2.close();
    const broken = path.join(dir, 'broken.safetensors');
    await saveSafetensors(broken, t2);
    assert.throws(() => detectSingleFile(broken), (e) => e instanceof ConfigError && /input_blocks/.test(e.message));
  });
});
