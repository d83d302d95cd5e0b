// LoraSet: fusing into the models' weights, unfusing back to the checkpoint bit for bit, several
// adapters with their own scales, the applied / skipped report, and the errors. (The LoRA goldens
// check the fused numbers against diffusers; this checks the bookkeeping around them.)
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { UNet2DConditionModel } = require('../../dist/models/unet/unet');
const { CLIPTextModel } = require('../../dist/models/clip/text_encoder');
const { LoraSet, LoraError, skippedWarning } = require('../../dist/lora');
const { ArgumentError, FileNotFoundError, openSafetensors, saveSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

const sd15 = () => fixture('models', 'tiny-sd15');
const lora = (f) => fixture('lora', `${f}.safetensors`);

function loadModels() {
  const unet = UNet2DConditionModel.fromPretrained(path.join(sd15(), 'unet'));
  const te = CLIPTextModel.fromPretrained(path.join(sd15(), 'text_encoder'));
  return { unet, te, set: new LoraSet({ unet: unet.weights, text_encoder: te.weights }, unet.config.layersPerBlock[0]) };
}

/** Every weight of a component as the model reads it now (fused replacement or checkpoint). */
function weightBytes(weights) {
  const out = new Map();
  for (const key of weights.keys()) {
    if (weights.base(key).dtype === 'I64') continue; // position ids: not a weight
    const t = weights.get(key, weights.shapeOf(key));
    out.set(key, Buffer.from(t.bytes()));
  }
  return out;
}

/** The same, straight from the checkpoint file (a fresh load). */
function fileBytes(file) {
  const f = openSafetensors(file);
  const out = new Map();
  for (const key of f.names()) if (f.info(key).dtype !== 'I64') out.set(key, Buffer.from(f.tensor(key).bytes()));
  f.close();
  return out;
}

function assertSameBytes(actual, expected, what) {
  assert.deepStrictEqual([...actual.keys()].sort(), [...expected.keys()].sort(), `${what}: key sets`);
  for (const [k, v] of expected) assert.ok(actual.get(k).equals(v), `${what}: '${k}' differs from a fresh load`);
}

async function runModels(unet, te, inputs) {
  unet.resetGraphs();
  te.resetGraphs();
  const u = await unet.forward(
    { sample: inputs.sample, timestep: new Float32Array([inputs.t]), encoderHiddenStates: inputs.ctx },
    { batch: 1, height: 8, width: 8, contextLength: 77 },
  );
  const e = await te.encode([inputs.ids], ['last_hidden_state']);
  const r = { unet: Buffer.from(u.bytes()), te: Buffer.from(e.last_hidden_state.bytes()) };
  u.dispose();
  e.last_hidden_state.dispose();
  return r;
}

describe('lora: LoraSet', function () {
  this.timeout(120000);
  const rng = new Rng();
  let dir, inputs;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-lora-'));
    inputs = {
      sample: rng.float32Array(4 * 8 * 8),
      t: 1 + rng.int(999),
      ctx: rng.float32Array(77 * 8),
      ids: [49406, ...Array.from({ length: 75 }, () => 300 + rng.int(900)), 49407],
    };
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it(`fuses, unfuses, and every weight and output is then bit for bit a fresh load's (seed ${rng.seed})`, async () => {
    const { unet, te, set } = loadModels();
    try {
      const fresh = { unet: fileBytes(path.join(sd15(), 'unet', 'diffusion_pytorch_model.safetensors')), te: fileBytes(path.join(sd15(), 'text_encoder', 'model.safetensors')) };
      const before = await runModels(unet, te, inputs);
      set.add([{ path: lora('sd15_lora_kohya_full') }, { path: lora('sd15_lora_kohya_te'), scale: 0.8 }], { strict: true });
      const { report, changed } = set.apply();
      assert.deepStrictEqual(changed.sort(), ['text_encoder', 'unet']);
      const fusedUnet = weightBytes(unet.weights);
      const fusedTe = weightBytes(te.weights);
      // exactly the reported modules changed; everything else is the checkpoint's
      const differs = (m, f) => [...f].filter(([k, v]) => !m.get(k).equals(v)).length;
      assert.strictEqual(differs(fusedUnet, fresh.unet), report.fused.unet);
      assert.strictEqual(differs(fusedTe, fresh.te), report.fused.text_encoder);
      assert.ok(report.fused.unet > 50 && report.fused.text_encoder > 0);
      const fused = await runModels(unet, te, inputs);
      assert.ok(!fused.unet.equals(before.unet) && !fused.te.equals(before.te));

      set.remove();
      assert.deepStrictEqual(set.apply().changed.sort(), ['text_encoder', 'unet']);
      assertSameBytes(weightBytes(unet.weights), fresh.unet, 'unet after unfuse');
      assertSameBytes(weightBytes(te.weights), fresh.te, 'text encoder after unfuse');
      const after = await runModels(unet, te, inputs);
      assert.ok(after.unet.equals(before.unet), 'UNet output after unfuse');
      assert.ok(after.te.equals(before.te), 'text-encoder output after unfuse');
    } finally {
      set.dispose();
      unet.dispose();
      te.dispose();
    }
  });

  it('changing scales re-fuses from the checkpoint: no drift, and scale 0 is the other adapter alone', async () => {
    const { unet, te, set } = loadModels();
    const alone = loadModels();
    try {
      set.add([{ path: lora('sd15_lora_kohya_full'), name: 'lcm' }, { path: lora('sd15_lora_kohya_te'), name: 'style', scale: 0.8 }]);
      set.apply();
      const first = weightBytes(unet.weights);
      for (const s of [0.3, -1, 2.5]) {
        set.setScales({ style: s, lcm: s / 2 });
        set.apply();
      }
      set.setScales({ style: 0.8, lcm: 1 });
      set.apply();
      assertSameBytes(weightBytes(unet.weights), first, 'after scale changes');

      set.setScales({ lcm: 0 });
      set.apply();
      alone.set.add([{ path: lora('sd15_lora_kohya_te'), scale: 0.8 }]);
      alone.set.apply();
      assertSameBytes(weightBytes(unet.weights), weightBytes(alone.unet.weights), 'lcm at 0 vs style alone');
      assertSameBytes(weightBytes(te.weights), weightBytes(alone.te.weights), 'text encoder, lcm at 0 vs style alone');
    } finally {
      for (const m of [{ unet, te, set }, alone]) {
        m.set.dispose();
        m.unet.dispose();
        m.te.dispose();
      }
    }
  });

  it('adapters combine linearly: W + a·dA + b·dB', () => {
    const models = [loadModels(), loadModels(), loadModels()];
    try {
      const [both, a, b] = models;
      both.set.add([{ path: lora('sd15_lora_kohya_full'), scale: 0.7 }, { path: lora('sd15_lora_diffusers'), scale: -0.4 }]);
      a.set.add([{ path: lora('sd15_lora_kohya_full'), scale: 0.7 }]);
      b.set.add([{ path: lora('sd15_lora_diffusers'), scale: -0.4 }]);
      for (const m of models) m.set.apply();
      const base = openSafetensors(path.join(sd15(), 'unet', 'diffusion_pytorch_model.safetensors'));
      let checked = 0;
      for (const key of base.names()) {
        const fa = a.set.fusedWeight('unet', key);
        const fb = b.set.fusedWeight('unet', key);
        const f = both.set.fusedWeight('unet', key);
        assert.strictEqual(!!f, !!(fa || fb), `${key}: fused iff an adapter touches it`);
        if (!f) continue;
        const w = base.float32(key);
        const va = fa ? fa.toFloat32() : w;
        const vb = fb ? fb.toFloat32() : w;
        const got = f.toFloat32();
        let num = 0;
        let den = 0;
        for (let i = 0; i < w.length; i++) {
          const want = va[i] + vb[i] - w[i];
          num += (got[i] - want) ** 2;
          den += want ** 2;
        }
        assert.ok(Math.sqrt(num / den) < 1e-6, `${key}: rel L2 ${Math.sqrt(num / den)}`);
        if (fa && fb) checked++;
      }
      base.close();
      assert.ok(checked > 10, `modules touched by both adapters: ${checked}`);
    } finally {
      for (const m of models) {
        m.set.dispose();
        m.unet.dispose();
        m.te.dispose();
      }
    }
  });

  it('reports applied and skipped keys: unknown keys are a warning listing them, or an error with strict', async () => {
    // a real file plus keys that match nothing: an unknown module, an unknown prefix, an unknown suffix
    const src = openSafetensors(lora('sd15_lora_kohya_te'));
    const tensors = {};
    for (const k of src.names()) {
      const info = src.info(k);
      tensors[k] = { dtype: info.dtype, shape: info.shape, data: src.tensor(k) };
    }
    const r2 = { dtype: 'F32', shape: [2, 8], data: rng.float32Array(16) };
    const u2 = { dtype: 'F32', shape: [8, 2], data: rng.float32Array(16) };
    const unknown = {
      'lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight': r2,
      'lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight': u2,
      'lora_vae_decoder_conv_in.lora_down.weight': r2,
      'lora_vae_decoder_conv_in.lora_up.weight': u2,
      'lora_te_text_model_encoder_layers_0_mlp_fc1.hada_w1_a': r2,
    };
    const file = path.join(dir, 'with_unknown.safetensors');
    await saveSafetensors(file, { ...tensors, ...unknown });
    const realKeys = src.names().length;
    src.close();

    const warnings = [];
    const onWarning = (w) => w.code === 'ONESTEP_LORA_SKIPPED' && warnings.push(w.message);
    process.on('warning', onWarning);
    const { unet, te, set } = loadModels();
    try {
      const [rep] = set.add([{ path: file }]);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      assert.strictEqual(rep.format, 'kohya');
      assert.strictEqual(rep.tensors, realKeys + 5);
      assert.strictEqual(rep.skipped.length, 5, JSON.stringify(rep.skipped));
      const reason = (k) => rep.skipped.find((s) => s.key === k)?.reason;
      for (const end of ['lora_down.weight', 'lora_up.weight']) {
        assert.match(reason(`lora_unet_down_blocks_7_attentions_0_proj_in.${end}`), /no module 'down_blocks_7_attentions_0_proj_in' in the unet/);
        assert.match(reason(`lora_vae_decoder_conv_in.${end}`), /unknown kohya prefix/);
      }
      assert.match(reason('lora_te_text_model_encoder_layers_0_mlp_fc1.hada_w1_a'), /unrecognised key/);
      // the file's real modules: two or three tensors each (down, up, alpha)
      const plain = new LoraSet({ unet: unet.weights, text_encoder: te.weights }, 2).add([{ path: lora('sd15_lora_kohya_te') }])[0];
      assert.deepStrictEqual([rep.matched, rep.byComponent], [plain.matched, plain.byComponent]);
      assert.ok(rep.byComponent.unet > 0 && rep.byComponent.text_encoder > 0);
      // reading reports, it does not warn: the pipeline warns once the fusion worked, in one line
      assert.strictEqual(warnings.length, 0);
      const short = skippedWarning(rep, false);
      assert.match(short, /5 of \d+ tensors were not applied: 2 no module .*; 2 unknown kohya prefix.*; 1 unrecognised key.*ONESTEP_DEBUG=1 lists them\)$/);
      assert.ok(!short.includes('lora_vae_decoder_conv_in'));
      const long = skippedWarning(rep, true);
      for (const k of Object.keys(unknown)) assert.ok(long.includes(k), `the detailed warning lists ${k}`);
      assert.strictEqual(set.apply().report.fused.unet, plain.byComponent.unet);

      assert.throws(() => set.add([{ path: file, name: 'again' }], { strict: true }), (e) => e instanceof LoraError && e.code === 'ERR_ONESTEP_LORA' && /5 of \d+ tensors were not applied.*lora_vae_decoder_conv_in/.test(e.message));
      assert.deepStrictEqual(set.names, ['with_unknown']);
    } finally {
      process.off('warning', onWarning);
      set.dispose();
      unet.dispose();
      te.dispose();
    }
  });

  it('bad LoRAs are typed errors that name the problem, and leave the weights as they were', async () => {
    const { unet, te, set } = loadModels();
    try {
      assert.throws(() => set.add([{ path: path.join(dir, 'nope.safetensors') }]), FileNotFoundError);
      assert.throws(() => set.add([{ path: lora('sd15_lora_peft'), scale: NaN }]), (e) => e instanceof ArgumentError && /finite/.test(e.message));
      assert.throws(() => set.add([{ path: path.join(sd15(), 'unet', 'diffusion_pytorch_model.safetensors') }]), (e) => e instanceof LoraError && /no LoRA key style/.test(e.message));
      // an SDXL LoRA on SD1.5: some module names exist, none of the shapes fit
      set.add([{ path: lora('sd15_lora_peft'), name: 'ok' }]);
      set.apply();
      const fused = weightBytes(unet.weights);
      set.add([{ path: lora('sdxl_lora_kohya_diffusers_names'), name: 'xl' }]);
      assert.throws(() => set.apply(), (e) => e instanceof LoraError && /does not match the weight|must be \[/.test(e.message) && /sdxl_lora_kohya_diffusers_names/.test(e.message));
      assertSameBytes(weightBytes(unet.weights), fused, 'weights after a failed fusion');
      set.remove(['xl']);
      assert.throws(() => set.setScales({ nope: 1 }), (e) => e instanceof ArgumentError && /no LoRA named 'nope'/.test(e.message));
      assert.throws(() => set.add([{ path: lora('sd15_lora_peft'), name: 'ok' }]), (e) => e instanceof ArgumentError && /already loaded/.test(e.message));
      // a truncated LoRA file
      const bytes = fs.readFileSync(lora('sd15_lora_peft'));
      const cut = path.join(dir, 'cut.safetensors');
      fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
      assert.throws(() => set.add([{ path: cut }]), (e) => e.code && e.code.startsWith('ERR_ONESTEP_SAFETENSORS'));
      // where fusions run: ONESTEP_LORA_FUSION takes 'auto' or 'cpu', anything else names itself
      process.env.ONESTEP_LORA_FUSION = 'gpu';
      try {
        assert.throws(() => set.apply(), (e) => e instanceof ArgumentError && /ONESTEP_LORA_FUSION must be 'auto' or 'cpu', got "gpu"/.test(e.message));
      } finally {
        delete process.env.ONESTEP_LORA_FUSION;
      }
      assertSameBytes(weightBytes(unet.weights), fused, 'weights after a refused option');
      // CPU components fuse on the CPU
      const r = set.apply();
      assert.strictEqual(r.report.fusedOn.unet, 'cpu');
      assert.ok(Object.values(r.report.fusedOn).every((p) => p === 'cpu'), JSON.stringify(r.report.fusedOn));
    } finally {
      set.dispose();
      unet.dispose();
      te.dispose();
    }
  });
});
