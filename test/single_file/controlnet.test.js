// ControlNets in the original single-file layout. The tiny fixture ControlNets are written into
// that layout by diffusers' own conversion rules, inverted here (diffusers v0.27.2,
// src/diffusers/pipelines/stable_diffusion/convert_from_ckpt.py, convert_ldm_unet_checkpoint with
// controlnet=True: renew_resnet_paths' renames, the input_blocks numbering, input_hint_block
// convolutions at even indices, zero_convs.{i}.0, middle_block_out.0), then read back: every
// tensor must come back under its diffusers name bit for bit, and the residuals must be identical.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { openSafetensors, saveSafetensors, ConfigError } = require('../..');
const { openControlNetFile } = require('../../dist/single_file/controlnet');
const { ControlNetModel, residualScales } = require('../../dist/models/controlnet/controlnet');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

// diffusers' renew_resnet_paths, inverted: diffusers resnet names -> original
const RESNET = { norm1: 'in_layers.0', conv1: 'in_layers.2', time_emb_proj: 'emb_layers.1', norm2: 'out_layers.0', conv2: 'out_layers.3', conv_shortcut: 'skip_connection' };

/** A diffusers ControlNet key -> the original layout's key (without the control_model. prefix). */
function toOriginal(key, cfg) {
  const L = cfg.layers_per_block;
  const levels = cfg.block_out_channels.length;
  const resnet = (rest) => {
    const [name, ...tail] = rest.split('.');
    assert.ok(RESNET[name], `resnet part ${name}`);
    return [RESNET[name], ...tail].join('.');
  };
  let m;
  if ((m = /^time_embedding\.linear_([12])\.(.+)$/.exec(key))) return `time_embed.${m[1] === '1' ? 0 : 2}.${m[2]}`;
  if ((m = /^add_embedding\.linear_([12])\.(.+)$/.exec(key))) return `label_emb.0.${m[1] === '1' ? 0 : 2}.${m[2]}`;
  if ((m = /^conv_in\.(.+)$/.exec(key))) return `input_blocks.0.0.${m[1]}`;
  if ((m = /^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(key))) return `input_blocks.${(L + 1) * Number(m[1]) + Number(m[2]) + 1}.0.${resnet(m[3])}`;
  if ((m = /^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/.exec(key))) return `input_blocks.${(L + 1) * Number(m[1]) + Number(m[2]) + 1}.1.${m[3]}`;
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(key))) {
    assert.ok(Number(m[1]) < levels - 1);
    return `input_blocks.${(L + 1) * (Number(m[1]) + 1)}.0.op.${m[2]}`;
  }
  if ((m = /^mid_block\.resnets\.([01])\.(.+)$/.exec(key))) return `middle_block.${m[1] === '0' ? 0 : 2}.${resnet(m[2])}`;
  if ((m = /^mid_block\.attentions\.0\.(.+)$/.exec(key))) return `middle_block.1.${m[1]}`;
  // the conditioning embedding: conv_in = hint 0, blocks.k = hint 2 + 2k, conv_out = the next even index
  const hintBlocks = 2 * (cfg.conditioning_embedding_out_channels.length - 1);
  if ((m = /^controlnet_cond_embedding\.conv_in\.(.+)$/.exec(key))) return `input_hint_block.0.${m[1]}`;
  if ((m = /^controlnet_cond_embedding\.blocks\.(\d+)\.(.+)$/.exec(key))) return `input_hint_block.${2 + 2 * Number(m[1])}.${m[2]}`;
  if ((m = /^controlnet_cond_embedding\.conv_out\.(.+)$/.exec(key))) return `input_hint_block.${2 + 2 * hintBlocks}.${m[1]}`;
  if ((m = /^controlnet_down_blocks\.(\d+)\.(.+)$/.exec(key))) return `zero_convs.${m[1]}.0.${m[2]}`;
  if ((m = /^controlnet_mid_block\.(.+)$/.exec(key))) return `middle_block_out.0.${m[1]}`;
  throw new Error(`no original name for ${key}`);
}

async function writeOriginal(folder, file, prefix) {
  const cfg = JSON.parse(fs.readFileSync(path.join(folder, 'config.json'), 'utf8'));
  const src = openSafetensors(path.join(folder, 'diffusion_pytorch_model.safetensors'));
  const tensors = {};
  const names = {};
  for (const n of src.names()) {
    const o = `${prefix}${toOriginal(n, cfg)}`;
    assert.ok(!tensors[o], `${o} twice`);
    const info = src.info(n);
    tensors[o] = { dtype: info.dtype, shape: info.shape, data: src.tensor(n).bytes() };
    names[n] = o;
  }
  src.close();
  await saveSafetensors(file, tensors);
  return names;
}

describe('single-file ControlNets (the original layout)', function () {
  this.timeout(120000);
  let dir;
  const rng = new Rng();
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-cn-file-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [model, prefix] of [['tiny-sd15-controlnet', 'control_model.'], ['tiny-sd15-controlnet', ''], ['tiny-sdxl-controlnet', 'control_model.']]) {
    it(`${model}${prefix ? '' : ' without the control_model. prefix'}: diffusers' rules to the original layout and back, bit for bit; the residuals are the folder's`, async () => {
      const folder = fixture('models', model);
      const file = path.join(dir, `${model}-${prefix ? 'p' : 'np'}.safetensors`);
      const names = await writeOriginal(folder, file, prefix);
      const fromFile = openControlNetFile(file, { config: folder });
      const fromFolder = ControlNetModel.fromPretrained(folder);
      const orig = openSafetensors(file);
      try {
        // every diffusers name resolves to its original key, with the same bytes
        const w = fromFile.weights;
        for (const [n, o] of Object.entries(names)) {
          const t = w.base(n);
          assert.ok(t, `${n} is found in the file`);
          assert.ok(t.bytes().equals(orig.tensor(o).bytes()), `${n} <- ${o}: bytes differ`);
          t.dispose();
        }
        assert.deepStrictEqual(fromFile.config, fromFolder.config, 'the same architecture');
        // the same residuals
        const c = fromFolder.config;
        const B = 1;
        const h = 8;
        const inputs = {
          sample: Float32Array.from({ length: B * 4 * h * h }, () => rng.normal()),
          timestep: Float32Array.of(400),
          encoderHiddenStates: Float32Array.from({ length: B * 77 * c.crossAttentionDim }, () => rng.normal()),
          controlnetCond: Float32Array.from({ length: B * 3 * 64 * 64 }, () => rng.next()),
          scales: residualScales(fromFolder.numResiduals, 1, false),
        };
        if (c.textTime) {
          inputs.textEmbeds = Float32Array.from({ length: B * fromFolder.textEmbedsDim }, () => rng.normal());
          inputs.timeIds = Float32Array.of(64, 64, 0, 0, 64, 64);
        }
        const shape = { batch: B, height: h, width: h, contextLength: 77 };
        const a = await fromFile.forward(inputs, shape);
        const b = await fromFolder.forward(inputs, shape);
        for (let i = 0; i < a.down.length; i++) assert.ok(Buffer.from(a.down[i].toFloat32().buffer).equals(Buffer.from(b.down[i].toFloat32().buffer)), `residual ${i}`);
        assert.ok(Buffer.from(a.mid.toFloat32().buffer).equals(Buffer.from(b.mid.toFloat32().buffer)));
        assert.deepStrictEqual(fromFile.unusedWeights(), []);
      } finally {
        orig.close();
        fromFile.dispose();
        fromFolder.dispose();
      }
    });
  }

  it('a pipeline takes the file as it takes the folder: the same image', async () => {
    const { loadPipeline } = require('../..');
    const { PNG } = require('pngjs');
    const folder = fixture('models', 'tiny-sd15-controlnet');
    const file = path.join(dir, 'pipe.safetensors');
    await writeOriginal(folder, file, 'control_model.');
    const png = new PNG({ width: 64, height: 64 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : rng.int(2) * 255;
    const image = PNG.sync.write(png);
    const a = await loadPipeline(fixture('models', 'tiny-sd15'), { controlnet: folder });
    const b = await loadPipeline(fixture('models', 'tiny-sd15'));
    try {
      await b.loadControlNet(file, { config: folder });
      const opts = { prompt: 'x', seed: 8, steps: 2, scheduler: 'lcm', guidanceScale: 1, control: { image } };
      const [ia] = await a.generate(opts);
      const [ib] = await b.generate(opts);
      assert.ok(Buffer.from(ia.rgb).equals(Buffer.from(ib.rgb)));
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it('without a config, what the weights cannot tell is a clear error; a UNet checkpoint is not a ControlNet', async () => {
    const file = path.join(dir, 'tiny.safetensors');
    await writeOriginal(fixture('models', 'tiny-sd15-controlnet'), file, 'control_model.');
    assert.throws(() => openControlNetFile(file), (e) => e instanceof ConfigError && /attention heads are unknown/.test(e.message));
    assert.throws(() => openControlNetFile(fixture('single_file', 'tiny-sd15.safetensors')), (e) => e instanceof ConfigError && /not a ControlNet in the original layout/.test(e.message));
    // a config for another ControlNet is refused, naming the field
    assert.throws(() => openControlNetFile(file, { config: fixture('models', 'tiny-sdxl-controlnet') }), (e) => e instanceof ConfigError && /is for another model|weights say/.test(e.message));
  });
});
