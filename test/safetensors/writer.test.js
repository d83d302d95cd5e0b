// Writing safetensors: round trips through our reader, re-serialising a real file reproduces its
// tensors exactly, and bad input is refused with a typed error.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { ArgumentError, openSafetensors, parseSafetensorsBuffer, saveSafetensors, serializeSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

describe('safetensors: writing', () => {
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-stw-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips F32, F16, BF16 and I64 with metadata', () => {
    const rng = new Rng();
    const a = rng.float32Array(24);
    const file = path.join(dir, 'rt.safetensors');
    saveSafetensors(
      file,
      {
        'a.weight': { dtype: 'F32', shape: [2, 3, 4], data: a },
        'b.half': { dtype: 'F16', shape: [24], data: a },
        'c.bf': { dtype: 'BF16', shape: [4, 6], data: a },
        ids: { dtype: 'I64', shape: [1, 5], data: new Float32Array([0, 1, 2, 3, 49407]) },
        empty: { dtype: 'F32', shape: [0], data: new Float32Array(0) },
      },
      { format: 'pt', note: 'seed ' + rng.seed },
    );
    const buf = fs.readFileSync(file);
    assert.strictEqual(Number(buf.readBigUInt64LE(0)) % 8, 0, 'header length is a multiple of 8');
    const f = openSafetensors(file);
    assert.deepStrictEqual(f.metadata, Object.assign(Object.create(null), { format: 'pt', note: 'seed ' + rng.seed }));
    assert.deepStrictEqual(Array.from(f.float32('a.weight')), Array.from(a));
    const half = f.float32('b.half');
    const bf = f.float32('c.bf');
    for (let i = 0; i < 24; i++) {
      assert.ok(Math.abs(half[i] - a[i]) <= Math.abs(a[i]) * 2 ** -11 + 2 ** -24, `f16 ${i}`);
      assert.ok(Math.abs(bf[i] - a[i]) <= Math.abs(a[i]) * 2 ** -8, `bf16 ${i}`);
    }
    assert.deepStrictEqual(Array.from(f.float32('ids')), [0, 1, 2, 3, 49407]);
    assert.strictEqual(f.info('ids').dtype, 'I64');
    assert.deepStrictEqual(f.info('empty').shape, [0]);
    f.close();
  });

  it('re-serialising a real checkpoint gives identical tensors', () => {
    const src = fixture('models', 'tiny-sdxl', 'vae', 'diffusion_pytorch_model.safetensors');
    const f = openSafetensors(src);
    const tensors = {};
    for (const name of f.names()) {
      const t = f.tensor(name);
      tensors[name] = { dtype: t.dtype, shape: t.shape, data: t };
    }
    const out = serializeSafetensors(tensors, f.metadata);
    const h = parseSafetensorsBuffer(out);
    assert.strictEqual(h.tensors.size, f.names().length);
    for (const name of f.names()) {
      const info = h.tensors.get(name);
      const bytes = out.subarray(h.dataStart + info.dataOffsets[0], h.dataStart + info.dataOffsets[1]);
      assert.ok(bytes.equals(tensors[name].data.bytes()), name);
    }
    f.close();
  });

  it('refuses bad input with ArgumentError', () => {
    const bad = [
      { x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } },
      { x: { dtype: 'Q4', shape: [1], data: new Uint8Array(1) } },
      { x: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } },
      { x: { dtype: 'U8', shape: [1], data: new Float32Array(1) } },
      { __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } },
      { x: { dtype: 'F32', shape: [1], data: [1] } },
    ];
    for (const t of bad) assert.throws(() => serializeSafetensors(t), ArgumentError);
    assert.throws(() => serializeSafetensors({}, { a: 1 }), ArgumentError);
  });
});
