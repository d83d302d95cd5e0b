// Loading single-file checkpoints: every tensor is the diffusers folder's, bit for bit; the same
// seed gives the same image as the folder; configs, scheduler and tokenizers come from a folder or
// repo (`config`), or the tokenizers from the family's standard repo; mismatches are clear errors.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { openSingleFile } = require('../../dist/single_file');
const { Checkpoint } = require('../../dist/safetensors');
const { loadPipeline, ArgumentError, ConfigError, openSafetensors, saveSafetensors } = require('../..');
const { MockHub, withEnv: withEnvVars } = require('../hub/mock_hub');
const { fixture } = require('../helpers/fixtures');

const sf = (m) => fixture('single_file', `${m}.safetensors`);
const model = (m) => fixture('models', m);
const image = async (pipe, extra = {}) => Buffer.from((await pipe.generate({ prompt: 'a lighthouse at dusk', seed: 11, ...extra }))[0].rgb);

describe('single file: loading', function () {
  this.timeout(120000);
  let tmp;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-sfload-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const m of ['tiny-sd15', 'tiny-sd21', 'tiny-sdxl']) {
    it(`${m}: every component tensor equals the diffusers folder's (name, dtype, shape, bytes)`, () => {
      const s = openSingleFile(sf(m), { configDir: model(m) });
      for (const [c, comp] of Object.entries(s.components)) {
        const ck = Checkpoint.open(path.join(model(m), c), { weightNames: ['diffusion_pytorch_model', 'model'] });
        assert.deepStrictEqual(comp.source.names().sort(), ck.names().sort(), `${m} ${c}: names`);
        for (const n of ck.names()) {
          const a = comp.source.tensor(n);
          const b = ck.tensor(n);
          assert.deepStrictEqual([a.dtype, a.shape], [b.dtype, b.shape], `${m} ${c} ${n}`);
          assert.ok(a.bytes().equals(b.bytes()), `${m} ${c} ${n}: bytes`);
          assert.deepStrictEqual(comp.source.info(n), { dtype: b.dtype, shape: b.shape });
        }
        ck.close();
        comp.source.close();
      }
    });

    it(`${m}: loadPipeline(file, { config }) generates the folder's image, byte for byte`, async () => {
      const a = await loadPipeline(sf(m), { config: model(m) });
      const b = await loadPipeline(model(m));
      try {
        assert.deepStrictEqual([a.family, a.defaults], [b.family, b.defaults]);
        assert.ok((await image(a)).equals(await image(b)));
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  }

  it('what the weights cannot tell: without config a tiny model\'s heads are unknown (a clear error); a wrong config is refused', async () => {
    await assert.rejects(loadPipeline(sf('tiny-sd21')), (e) => e instanceof ConfigError && /attention heads are unknown.*--config/.test(e.message));
    await assert.rejects(loadPipeline(sf('tiny-sd21'), { config: model('tiny-sd15') }), (e) => e instanceof ConfigError && /'block_out_channels' is \[16,24\] but the single file's weights say \[16,32\]/.test(e.message));
    await assert.rejects(loadPipeline(sf('tiny-sd21'), { config: path.join(tmp, 'nope') }), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND');
  });

  it('prediction overrides the scheduler config; pickle checkpoints are refused', async () => {
    const eps = await loadPipeline(sf('tiny-sd21'), { config: model('tiny-sd21') });
    const v = await loadPipeline(sf('tiny-sd21'), { config: model('tiny-sd21'), prediction: 'v_prediction' });
    try {
      assert.ok(!(await image(eps)).equals(await image(v)), 'v-prediction changes the result');
    } finally {
      eps.dispose();
      v.dispose();
    }
    const ckpt = path.join(tmp, 'model.ckpt');
    fs.writeFileSync(ckpt, 'PK');
    await assert.rejects(loadPipeline(ckpt), (e) => e instanceof ArgumentError && /pickle/.test(e.message));
  });

  it('keys no component reads are a warning naming them', async () => {
    const src = openSafetensors(sf('tiny-sd15'));
    const tensors = {};
    for (const k of src.names()) {
      const info = src.info(k);
      tensors[k] = { dtype: info.dtype, shape: info.shape, data: src.tensor(k) };
    }
    src.close();
    tensors['model.diffusion_model.extra_head.weight'] = { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) };
    const f = path.join(tmp, 'extra.safetensors');
    await saveSafetensors(f, tensors);
    const warnings = [];
    const on = (w) => w.code === 'ONESTEP_SINGLE_FILE_UNMATCHED' && warnings.push(w.message);
    process.on('warning', on);
    try {
      const p = await loadPipeline(f, { config: model('tiny-sd15') });
      p.dispose();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', on);
    }
    assert.strictEqual(warnings.length, 1);
    assert.match(warnings[0], /1 tensors match no component.*model\.diffusion_model\.extra_head\.weight/);
  });

  it('a file missing weights its architecture needs is refused at load, listing them', async () => {
    const src = openSafetensors(sf('tiny-sd15'));
    const tensors = {};
    for (const k of src.names()) {
      if (k === 'model.diffusion_model.out.0.weight' || k === 'first_stage_model.decoder.mid.attn_1.q.bias') continue;
      const info = src.info(k);
      tensors[k] = { dtype: info.dtype, shape: info.shape, data: src.tensor(k) };
    }
    src.close();
    const f = path.join(tmp, 'incomplete.safetensors');
    await saveSafetensors(f, tensors);
    await assert.rejects(loadPipeline(f, { config: model('tiny-sd15') }), (e) => e instanceof ConfigError && /2 weights the sd1 architecture needs are missing/.test(e.message) && /unet: missing 'conv_norm_out\.weight' \[16\]/.test(e.message) && /vae: missing 'decoder\.mid_block\.attentions\.0\.to_q\.bias'/.test(e.message));
  });

  describe('with the hub (local mock)', () => {
    let hub, env;
    before(async () => {
      // a config-only repo (no weights), and the family's standard repo holding the tokenizer
      const cfg = path.join(tmp, 'cfg');
      fs.cpSync(model('tiny-sd15'), cfg, { recursive: true, filter: (s) => !s.endsWith('.safetensors') });
      const std = path.join(tmp, 'std');
      fs.mkdirSync(std);
      fs.cpSync(path.join(model('tiny-sd15'), 'tokenizer'), path.join(std, 'tokenizer'), { recursive: true });
      fs.writeFileSync(path.join(std, 'unet.safetensors'), Buffer.alloc(16)); // must not be fetched
      hub = new MockHub();
      hub.addRepo('test-org/tiny-sd15-config', cfg);
      hub.addRepo('stable-diffusion-v1-5/stable-diffusion-v1-5', std);
      await hub.start();
      env = { HF_HOME: path.join(tmp, 'hf'), HF_ENDPOINT: hub.endpoint };
    });
    after(async () => {
      await hub.close();
    });
    const withEnv = (extra, fn) => withEnvVars({ ...env, ...extra }, fn);
    const sameAsFolder = async (p) => {
      const b = await loadPipeline(model('tiny-sd15'));
      try {
        assert.ok((await image(p)).equals(await image(b)));
      } finally {
        p.dispose();
        b.dispose();
      }
    };

    it('config can be a repo id: only its configs and tokenizers are fetched', async () => {
      await sameAsFolder(await withEnv({}, () => loadPipeline(sf('tiny-sd15'), { config: 'test-org/tiny-sd15-config' })));
      const fetched = hub.requests.filter((r) => r.method === 'GET' && /\/resolve\//.test(r.url)).map((r) => r.url);
      assert.ok(fetched.some((u) => /tokenizer\/vocab\.json/.test(u)) && fetched.some((u) => /unet\/config\.json/.test(u)));
      assert.ok(!fetched.some((u) => /\.safetensors/.test(u)), fetched.join('\n'));
    });

    it('without tokenizer/ in config, the tokenizer comes from the family\'s standard repo; offline, the error says what is missing', async () => {
      const cfg = path.join(tmp, 'cfg-no-tok');
      fs.cpSync(model('tiny-sd15'), cfg, { recursive: true, filter: (s) => !/tokenizer/.test(path.relative(model('tiny-sd15'), s)) });
      hub.reset();
      await sameAsFolder(await withEnv({}, () => loadPipeline(sf('tiny-sd15'), { config: cfg })));
      const fetched = hub.requests.filter((r) => /\/resolve\//.test(r.url)).map((r) => r.url);
      assert.ok(fetched.every((u) => /stable-diffusion-v1-5\/stable-diffusion-v1-5\/resolve\/[^/]+\/tokenizer\//.test(u)), fetched.join('\n'));
      await assert.rejects(
        withEnv({ HF_HOME: path.join(tmp, 'hf-empty'), HF_HUB_OFFLINE: '1' }, () => loadPipeline(sf('tiny-sd15'), { config: cfg })),
        (e) => e instanceof ConfigError && /holds no tokenizer; pass config: .*tokenizer\/.*stable-diffusion-v1-5\/stable-diffusion-v1-5/.test(e.message),
      );
    });
  });
});
