// Every safetensors file in the fixtures loads; native zero-copy views hold exactly the file's
// values (checked against an independent JS decoder) for F32, F16, BF16 and I64.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { openSafetensors, parseSafetensorsBuffer } = require('../..');
const { decodeToFloat32 } = require('../../dist/safetensors');
const { addon } = require('../../dist/native');
const { fixture, fixturesDir } = require('../helpers/fixtures');

function listSafetensors(dir, out = []) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) listSafetensors(p, out);
    else if (e.name.endsWith('.safetensors')) out.push(p);
  }
  return out;
}

function sameFloats(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

describe('safetensors: fixture files', () => {
  const files = listSafetensors(fixture('models')).concat(listSafetensors(fixture('golden')), listSafetensors(fixture('lora')));

  it('finds the fixture files', () => {
    assert.ok(files.length >= 90, `only ${files.length} files under ${fixturesDir}`);
  });

  it('every file parses and every tensor matches the bytes on disk', function () {
    this.timeout(300000);
    const dtypes = new Set();
    let tensors = 0;
    for (const file of files) {
      const buf = fs.readFileSync(file);
      const h = parseSafetensorsBuffer(buf, file);
      const f = openSafetensors(file);
      assert.deepStrictEqual(f.names().sort(), [...h.tensors.keys()].sort());
      for (const name of f.names()) {
        const info = f.info(name);
        dtypes.add(info.dtype);
        const t = f.tensor(name);
        assert.strictEqual(t.dtype, info.dtype);
        assert.deepStrictEqual(t.shape, info.shape);
        const raw = buf.subarray(h.dataStart + info.dataOffsets[0], h.dataStart + info.dataOffsets[1]);
        assert.ok(t.bytes().equals(raw), `${file} ${name}: bytes differ`);
        assert.ok(sameFloats(t.toFloat32(), decodeToFloat32(info.dtype, raw)), `${file} ${name}: values differ`);
        t.dispose();
        tensors++;
      }
      f.close();
    }
    for (const d of ['F32', 'F16', 'BF16', 'I64']) assert.ok(dtypes.has(d), `no ${d} tensor in the fixtures`);
    assert.ok(tensors > 1000, `only ${tensors} tensors`);
  });

  it('reads the int64 position_ids buffer of the SD1.5 text encoder', () => {
    const f = openSafetensors(fixture('models', 'tiny-sd15', 'text_encoder', 'model.safetensors'));
    const t = f.tensor('text_model.embeddings.position_ids');
    assert.strictEqual(t.dtype, 'I64');
    assert.deepStrictEqual(t.shape, [1, 77]);
    assert.deepStrictEqual(Array.from(t.toFloat32()), Array.from({ length: 77 }, (_, i) => i));
    f.close();
  });

  it('tensors stay valid after the file handle is closed', () => {
    const f = openSafetensors(fixture('models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors'));
    const name = f.names()[0];
    const t = f.tensor(name);
    const before = t.toFloat32();
    f.close();
    assert.ok(sameFloats(t.toFloat32(), before));
    assert.throws(() => f.tensor(name), /closed/);
    t.dispose();
    assert.throws(() => t.toFloat32(), (e) => e.code === 'ERR_ONESTEP_DISPOSED');
  });

  it('the golden files carry their case description in __metadata__ (as golden/index.json says)', () => {
    const index = JSON.parse(fs.readFileSync(fixture('golden', 'index.json'), 'utf8'));
    assert.ok(Object.keys(index).length > 0);
    for (const [name, entry] of Object.entries(index)) {
      const f = openSafetensors(fixture('golden', name));
      const c = JSON.parse(f.metadata.case);
      assert.deepStrictEqual([c.kind, c.model], [entry.kind, entry.model], name);
      f.close();
    }
  });
});

describe('native mapping validates what it is handed', () => {
  const file = fixture('models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors');
  const size = fs.statSync(file).size;
  const bad = [
    ['beyond the end', ['x', 'F32', [4], size - 8, size + 8], 'ERR_ONESTEP_SAFETENSORS_RANGE'],
    ['size mismatch', ['x', 'F32', [4], 0, 12], 'ERR_ONESTEP_SAFETENSORS_SIZE'],
    ['end before begin', ['x', 'F32', [0], 16, 8], 'ERR_ONESTEP_SAFETENSORS_RANGE'],
    ['negative begin', ['x', 'F32', [1], -4, 0], 'ERR_ONESTEP_ARGUMENT'],
    ['NaN offset', ['x', 'F32', [1], NaN, 4], 'ERR_ONESTEP_ARGUMENT'],
    ['huge offset', ['x', 'F32', [1], 2 ** 60, 2 ** 60 + 4], 'ERR_ONESTEP_ARGUMENT'],
    ['negative dimension', ['x', 'F32', [-1], 0, 4], 'ERR_ONESTEP_ARGUMENT'],
    ['overflowing shape', ['x', 'F32', [2 ** 30, 2 ** 30, 2 ** 30], 0, 4], 'ERR_ONESTEP_SHAPE'],
    ['unsupported dtype', ['x', 'F64', [1], 0, 8], 'ERR_ONESTEP_DTYPE'],
    ['shape not an array', ['x', 'F32', 4, 0, 16], 'ERR_ONESTEP_ARGUMENT'],
  ];
  for (const [what, args, code] of bad) {
    it(`${what} -> ${code}`, () => {
      const m = addon().mapFile(file);
      assert.throws(() => m.tensor(...args), (e) => e.code === code);
      m.close();
    });
  }
  it('readBytes outside the file and a closed mapping are errors', () => {
    const m = addon().mapFile(file);
    assert.throws(() => m.readBytes(0, size + 1), (e) => e.code === 'ERR_ONESTEP_RANGE');
    m.close();
    assert.throws(() => m.readBytes(0, 8), (e) => e.code === 'ERR_ONESTEP_DISPOSED');
  });
  it('wrappers cannot be constructed from JS', () => {
    assert.throws(() => new (addon().Tensor)(), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => new (addon().MappedFile)(), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
  });
});
