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

  it('takes latent sizes its down path cannot halve evenly (each upsampler resizes to its skip, as diffusers), refuses empty ones', async () => {
    const u = UNet2DConditionModel.fromPretrained(fixture('models', 'tiny-sdxl', 'unet'));
    try {
      const B = 1, H = 9, W = 5, L = 77;
      const rnd = (n) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
      const out = await u.forward(
        { sample: rnd(B * 4 * H * W), timestep: Float32Array.of(999), encoderHiddenStates: rnd(B * L * u.config.crossAttentionDim), textEmbeds: rnd(B * u.textEmbedsDim), timeIds: Float32Array.of(9 * 8, 5 * 8, 0, 0, 9 * 8, 5 * 8) },
        { batch: B, height: H, width: W, contextLength: L },
      );
      assert.deepStrictEqual(out.shape, [B, 4, H, W]);
      assert.ok(out.toFloat32().every(Number.isFinite));
      out.dispose();
      assert.throws(() => u.graph(1, 0, 8, 77), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /latent height/.test(e.message));
    } finally {
      u.dispose();
    }
  });

  it('needs the conditioning its family uses', async () => {
    const u = UNet2DConditionModel.fromPretrained(fixture('models', 'tiny-lcm', 'unet'));
    const shape = { batch: 1, height: 8, width: 8, contextLength: 77 };
    await assert.rejects(u.forward({ sample: new Float32Array(256), timestep: new Float32Array([999]), encoderHiddenStates: new Float32Array(77 * 8) }, shape), /timestepCond/);
    u.dispose();
  });

  it("precision 'bf16' runs every GEMM on a weight with bf16 operands (no Winograd; conv_out to 4 channels by the narrow GEMM in float32 where the CPU has it), the rest as in fp32", async () => {
    const { addon } = require('../../dist/native');
    const native = addon().gemmInfo().bf16Kernel;
    if (!native) assert.ok(addon().gemmSelectBf16('generic'));
    try {
      const placements = {};
      for (const precision of ['fp32', 'bf16']) {
        const u = UNet2DConditionModel.fromPretrained(fixture('models', 'tiny-sd21', 'unet'), { precision });
        placements[precision] = await u.graph(1, 8, 8, 77).placements();
        u.dispose();
      }
      const algos = (p) => new Set(p.filter((n) => n.op === 'linear' || n.op === 'conv2d').map((n) => n.algorithm));
      const narrow = addon().gemmInfo().narrow ? ['narrow_gemm'] : [];
      assert.deepStrictEqual([...algos(placements.bf16)].sort(), ['gemm_1x1_bf16', 'gemm_bf16', 'implicit_gemm_bf16', ...narrow].sort());
      assert.ok(![...algos(placements.fp32)].some((x) => /bf16/.test(x)));
      // the narrow conv is conv_out (the last conv2d), in both precisions
      for (const p of [placements.fp32, placements.bf16]) {
        const convs = p.filter((n) => n.op === 'conv2d');
        assert.strictEqual(convs.filter((n) => n.algorithm === 'narrow_gemm').length, narrow.length);
        if (narrow.length) assert.strictEqual(convs[convs.length - 1].algorithm, 'narrow_gemm');
      }
      assert.deepStrictEqual(placements.bf16.map((n) => n.op), placements.fp32.map((n) => n.op));
    } finally {
      addon().gemmSelectBf16('auto');
    }
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
