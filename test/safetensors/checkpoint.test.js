// Checkpoints: single files, sharded sets with an index, and diffusers variant files.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { FileNotFoundError, SafetensorsError, openCheckpoint, openSafetensors, saveSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');

// Splits a real file into `n` shards plus an index, in diffusers naming.
function shard(src, dir, base, n, indexName) {
  const f = openSafetensors(src);
  const names = f.names();
  const weightMap = {};
  for (let s = 0; s < n; s++) {
    const shardName = `${base}-0000${s + 1}-of-0000${n}.safetensors`;
    const part = {};
    names.filter((_, i) => i % n === s).forEach((name) => {
      const t = f.tensor(name);
      part[name] = { dtype: t.dtype, shape: t.shape, data: t };
      weightMap[name] = shardName;
    });
    saveSafetensors(path.join(dir, shardName), part);
  }
  fs.writeFileSync(path.join(dir, indexName), JSON.stringify({ metadata: { total_size: 1 }, weight_map: weightMap }));
  f.close();
  return names;
}

describe('safetensors: checkpoints', () => {
  const src = fixture('models', 'tiny-sd21', 'unet', 'diffusion_pytorch_model.safetensors');
  let dir;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-ckpt-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('opens a diffusers component folder', () => {
    const c = openCheckpoint(path.dirname(src));
    const f = openSafetensors(src);
    assert.deepStrictEqual(c.names().sort(), f.names().sort());
    assert.strictEqual(c.variant, undefined);
    c.close();
    f.close();
  });

  it('a sharded checkpoint gives the same tensors as the single file', () => {
    const names = shard(src, dir, 'diffusion_pytorch_model', 3, 'diffusion_pytorch_model.safetensors.index.json');
    const c = openCheckpoint(dir);
    const f = openSafetensors(src);
    assert.strictEqual(c.shards.length, 3);
    assert.deepStrictEqual(c.names().sort(), names.slice().sort());
    for (const name of names) assert.deepStrictEqual(Array.from(c.float32(name)), Array.from(f.float32(name)), name);
    c.close();
    f.close();
  });

  it('prefers the requested variant and falls back to the plain files', () => {
    fs.copyFileSync(src, path.join(dir, 'diffusion_pytorch_model.safetensors'));
    saveSafetensors(path.join(dir, 'diffusion_pytorch_model.fp16.safetensors'), { only: { dtype: 'F16', shape: [1], data: new Float32Array([1]) } });
    const v = openCheckpoint(dir, { variant: 'fp16' });
    assert.strictEqual(v.variant, 'fp16');
    assert.deepStrictEqual(v.names(), ['only']);
    v.close();
    const plain = openCheckpoint(dir, { variant: 'bf16' });
    assert.strictEqual(plain.variant, undefined);
    assert.ok(plain.names().length > 10);
    plain.close();
  });

  it('finds a sharded variant by its diffusers index name', () => {
    shard(src, dir, 'diffusion_pytorch_model.fp16', 2, 'diffusion_pytorch_model.safetensors.index.fp16.json');
    const c = openCheckpoint(dir, { variant: 'fp16' });
    assert.strictEqual(c.variant, 'fp16');
    assert.strictEqual(c.shards.length, 2);
    c.close();
  });

  it('refuses hostile or broken indexes with typed errors', () => {
    const idx = path.join(dir, 'model.safetensors.index.json');
    const write = (o) => fs.writeFileSync(idx, typeof o === 'string' ? o : JSON.stringify(o));
    for (const shardName of ['../x.safetensors', '/etc/passwd', 'a/b.safetensors', '..', '']) {
      write({ weight_map: { w: shardName } });
      assert.throws(() => openCheckpoint(idx), (e) => e instanceof SafetensorsError && e.code === 'ERR_ONESTEP_SAFETENSORS_INDEX', shardName);
    }
    write('{not json');
    assert.throws(() => openCheckpoint(idx), (e) => e.code === 'ERR_ONESTEP_SAFETENSORS_INDEX');
    write({ weight_map: [] });
    assert.throws(() => openCheckpoint(idx), (e) => e.code === 'ERR_ONESTEP_SAFETENSORS_INDEX');
    write({ weight_map: { w: 'missing.safetensors' } });
    assert.throws(() => openCheckpoint(idx), FileNotFoundError);
    saveSafetensors(path.join(dir, 's1.safetensors'), { a: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    write({ weight_map: { b: 's1.safetensors' } });
    assert.throws(() => openCheckpoint(idx), (e) => e.code === 'ERR_ONESTEP_SAFETENSORS_INDEX' && /'b'/.test(e.message));
    saveSafetensors(path.join(dir, 's2.safetensors'), { a: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    write({ weight_map: { a: 's1.safetensors', x: 's2.safetensors' } });
    assert.throws(() => openCheckpoint(idx), (e) => e.code === 'ERR_ONESTEP_SAFETENSORS_DUPLICATE' || e.code === 'ERR_ONESTEP_SAFETENSORS_INDEX');
  });

  it('a folder without weights names what it looked for', () => {
    assert.throws(() => openCheckpoint(dir), (e) => e instanceof FileNotFoundError && /diffusion_pytorch_model\.safetensors/.test(e.message));
    assert.throws(() => openCheckpoint(path.join(dir, 'nope')), FileNotFoundError);
  });

  it('asking for a tensor that is not there is a typed error naming it', () => {
    const c = openCheckpoint(src);
    assert.throws(() => c.tensor('no.such.weight'), (e) => e.code === 'ERR_ONESTEP_SAFETENSORS_MISSING' && /no\.such\.weight/.test(e.message));
    c.close();
  });
});
