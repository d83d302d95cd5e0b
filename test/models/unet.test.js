// UNet2DConditionModel: configs it cannot honour are refused by name; sizes it cannot run are
// refused before running; every weight of the fixtures is used.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { UNet2DConditionModel } = require('../../dist/models/unet/unet');
const { fixture } = require('../helpers/fixtures');

function withConfig(src, dir, patch) {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
  fs.symlinkSync(path.join(src, 'diffusion_pytorch_model.safetensors'), path.join(dir, 'diffusion_pytorch_model.safetensors'));
}

describe('UNet2DConditionModel', () => {
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-unet-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [field, value] of [
    ['class_embed_type', 'timestep'],
    ['resnet_time_scale_shift', 'scale_shift'],
    ['addition_embed_type', 'text'],
    ['down_block_types', ['SimpleCrossAttnDownBlock2D', 'DownBlock2D']],
    ['mid_block_type', 'UNetMidBlock2DSimpleCrossAttn'],
    ['only_cross_attention', true],
    ['act_fn', 'mish'],
    ['num_attention_heads', 8],
  ]) {
    it(`refuses ${field} = ${JSON.stringify(value)} with a ConfigError naming it`, () => {
      const sub = path.join(dir, field);
      withConfig(fixture('models', 'tiny-sd15', 'unet'), sub, { [field]: value });
      assert.throws(() => UNet2DConditionModel.fromPretrained(sub), (e) => e.code === 'ERR_ONESTEP_CONFIG' && e.message.includes(field));
    });
  }

  it('refuses a latent size the down/up path cannot halve evenly', () => {
    const u = UNet2DConditionModel.fromPretrained(fixture('models', 'tiny-sdxl', 'unet'));
    assert.throws(() => u.graph(1, 9, 8, 77), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /divisible by 4/.test(e.message));
    u.dispose();
  });

  it('needs the conditioning its family uses', async () => {
    const u = UNet2DConditionModel.fromPretrained(fixture('models', 'tiny-lcm', 'unet'));
    const shape = { batch: 1, height: 8, width: 8, contextLength: 77 };
    await assert.rejects(u.forward({ sample: new Float32Array(256), timestep: new Float32Array([999]), encoderHiddenStates: new Float32Array(77 * 8) }, shape), /timestepCond/);
    u.dispose();
  });

  it('uses every weight of each fixture UNet', async () => {
    for (const m of ['tiny-sd15', 'tiny-sd21', 'tiny-sdxl', 'tiny-lcm']) {
      const u = UNet2DConditionModel.fromPretrained(fixture('models', m, 'unet'));
      u.graph(1, 8, 8, 77);
      assert.deepStrictEqual(u.unusedWeights(), [], m);
      u.dispose();
    }
  });
});
