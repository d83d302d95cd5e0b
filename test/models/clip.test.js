// CLIPTextModel: loading errors name the file, the key and both shapes; encode checks its input.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { CLIPTextModel } = require('../../dist/models/clip/text_encoder');
const { openSafetensors, saveSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');

function copyEncoder(src, dir, { dropKey, reshapeKey, config } = {}) {
  fs.mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, ...config }));
  const f = openSafetensors(path.join(src, 'model.safetensors'));
  const tensors = {};
  for (const name of f.names()) {
    if (name === dropKey) continue;
    const t = f.tensor(name);
    tensors[name] = name === reshapeKey ? { dtype: 'F32', shape: [t.shape[0] + 1, ...t.shape.slice(1)], data: new Float32Array((t.shape[0] + 1) * t.shape.slice(1).reduce((a, b) => a * b, 1)) } : { dtype: t.dtype, shape: t.shape, data: t };
  }
  saveSafetensors(path.join(dir, 'model.safetensors'), tensors);
  f.close();
}

describe('CLIPTextModel', () => {
  const src = fixture('models', 'tiny-sd15', 'text_encoder');
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-clip-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('loads the fixture and reports no unused weights', () => {
    const m = CLIPTextModel.fromPretrained(src);
    assert.strictEqual(m.config.layers, JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')).num_hidden_layers);
    assert.deepStrictEqual(m.unusedWeights(), []);
    m.dispose();
  });

  it('a missing weight is a WeightError with the full key and the expected shape', () => {
    copyEncoder(src, dir, { dropKey: 'text_model.encoder.layers.1.mlp.fc2.weight' });
    assert.throws(() => CLIPTextModel.fromPretrained(dir), (e) => e.code === 'ERR_ONESTEP_WEIGHTS' && e.key === 'text_model.encoder.layers.1.mlp.fc2.weight' && /expected shape \[8, 32\]/.test(e.message));
  });

  it('a weight of the wrong shape names both shapes', () => {
    copyEncoder(src, dir, { reshapeKey: 'text_model.encoder.layers.0.self_attn.q_proj.weight' });
    assert.throws(() => CLIPTextModel.fromPretrained(dir), (e) => e.code === 'ERR_ONESTEP_WEIGHTS' && /has shape \[9, 8\], expected \[8, 8\]/.test(e.message));
  });

  it('unsupported config values are ConfigErrors naming the field', () => {
    copyEncoder(src, dir, { config: { hidden_act: 'mish' } });
    assert.throws(() => CLIPTextModel.fromPretrained(dir), (e) => e.code === 'ERR_ONESTEP_CONFIG' && /hidden_act/.test(e.message));
    fs.writeFileSync(path.join(dir, 'config.json'), '{broken');
    assert.throws(() => CLIPTextModel.fromPretrained(dir), (e) => e.code === 'ERR_ONESTEP_CONFIG' && /not valid JSON/.test(e.message));
    fs.rmSync(path.join(dir, 'config.json'));
    assert.throws(() => CLIPTextModel.fromPretrained(dir), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND');
  });

  it('encode checks token ids and lengths', async () => {
    const m = CLIPTextModel.fromPretrained(src);
    await assert.rejects(m.encode([[49406, 50000]], ['last_hidden_state']), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /50000/.test(e.message));
    await assert.rejects(m.encode([[1, 2], [3]], ['last_hidden_state']), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    await assert.rejects(m.encode([Array(78).fill(1)], ['last_hidden_state']), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /78/.test(e.message));
    assert.throws(() => m.graph(1, 77, ['text_embeds']), /WithProjection/);
    m.dispose();
  });

  it('penultimate alone skips the last layer and equals the full graph output', async () => {
    const m = CLIPTextModel.fromPretrained(src);
    const ids = [[49406, 320, 1125, 49407, 49407]];
    const a = await m.encode(ids, ['penultimate']);
    const b = await m.encode(ids, ['penultimate', 'last_hidden_state']);
    assert.deepStrictEqual(Array.from(a.penultimate.toFloat32()), Array.from(b.penultimate.toFloat32()));
    assert.ok(m.graph(1, 5, ['penultimate']).nodeCount < m.graph(1, 5, ['penultimate', 'last_hidden_state']).nodeCount);
    m.dispose();
  });
});
