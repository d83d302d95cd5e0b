// Every malformed safetensors file gets a typed SafetensorsError naming the file and the tensor.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { SafetensorsError, UnsupportedDtypeError, openSafetensors, parseSafetensorsBuffer } = require('../..');

// Builds a file from a header given as text (exactly as written) and a data buffer.
function build(headerText, data = Buffer.alloc(0), { length } = {}) {
  const h = Buffer.from(headerText, 'latin1');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(length ?? h.length), 0);
  h.copy(out, 8);
  data.copy(out, 8 + h.length);
  return out;
}
const utf8 = (s) => Buffer.from(s, 'utf8').toString('latin1');
const f32 = (n) => Buffer.alloc(4 * n, 1);
const one = (entry, data = f32(2)) => build(utf8(JSON.stringify({ w: entry })), data);
const good = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };

const cases = [
  ['shorter than 8 bytes', Buffer.from([1, 2, 3]), 'TRUNCATED'],
  ['header length beyond the file', build('{}', Buffer.alloc(0), { length: 1000 }), 'TRUNCATED'],
  ['absurd header length (2^40)', build('{}', Buffer.alloc(0), { length: 2 ** 40 }), 'HEADER_SIZE'],
  ['header length 2^64-1', (() => { const b = build('{}'); b.writeBigUInt64LE(2n ** 64n - 1n, 0); return b; })(), 'HEADER_SIZE'],
  ['header length over the 100 MB cap', build('{}', Buffer.alloc(0), { length: 100_000_001 }), 'HEADER_SIZE'],
  ['invalid UTF-8', build('{"w\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32(2)), 'UTF8'],
  ['invalid JSON', build('{"w":{"dtype":"F32",'), 'JSON'],
  ['header is an array', build('[1,2,3]'), 'HEADER'],
  ['header is a string', build('"abc"'), 'HEADER'],
  ['entry is not an object', build('{"w":[1,2]}'), 'HEADER', 'w'],
  ['missing dtype', one({ shape: [2], data_offsets: [0, 8] }), 'HEADER', 'w'],
  ['missing shape', one({ dtype: 'F32', data_offsets: [0, 8] }), 'HEADER', 'w'],
  ['missing data_offsets', one({ dtype: 'F32', shape: [2] }), 'HEADER', 'w'],
  ['unexpected field', one({ ...good, extra: 1 }), 'HEADER', 'w'],
  ['invalid dtype name', one({ ...good, dtype: 'F33' }), 'DTYPE', 'w'],
  ['dtype not a string', one({ ...good, dtype: 4 }), 'DTYPE', 'w'],
  ['negative dimension', one({ ...good, shape: [-2] }), 'SHAPE', 'w'],
  ['fractional dimension', build('{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}', f32(2)), 'SHAPE', 'w'],
  ['dimension written as 2.0', build('{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}', f32(2)), 'SHAPE', 'w'],
  ['dimension in exponent form', build('{"w":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}', f32(2)), 'SHAPE', 'w'],
  ['dimension as string', one({ ...good, shape: ['2'] }), 'SHAPE', 'w'],
  ['dimension beyond 2^53', build('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', f32(2)), 'SHAPE', 'w'],
  ['shape not an array', one({ ...good, shape: 2 }), 'SHAPE', 'w'],
  ['17 dimensions', one({ ...good, shape: Array(17).fill(1) }, f32(1)), 'SHAPE', 'w'],
  ['offsets of length 3', one({ ...good, data_offsets: [0, 4, 8] }), 'OFFSETS', 'w'],
  ['negative offset', one({ ...good, data_offsets: [-8, 0] }), 'OFFSETS', 'w'],
  ['fractional offset', build('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}}', f32(2)), 'OFFSETS', 'w'],
  ['end before begin', one({ ...good, data_offsets: [8, 0] }), 'OFFSETS', 'w'],
  ['offsets not matching shape x dtype', one({ ...good, shape: [3] }), 'OFFSETS', 'w'],
  ['offsets beyond the data', one({ ...good, shape: [4], data_offsets: [0, 16] }), 'TRUNCATED', 'w'],
  ['truncated data', one(good, f32(1)), 'TRUNCATED', 'w'],
  ['trailing bytes after the last tensor', one(good, f32(3)), 'OFFSETS'],
  [
    'overlapping tensors',
    build(utf8(JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } })), f32(3)),
    'OFFSETS',
    'b',
  ],
  [
    'gap between tensors',
    build(utf8(JSON.stringify({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } })), f32(3)),
    'OFFSETS',
    'b',
  ],
  ['duplicate tensor names', build('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32(2)), 'DUPLICATE'],
  ['duplicate field in an entry', build('{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', f32(2)), 'DUPLICATE'],
  ['__metadata__ value not a string', build(utf8(JSON.stringify({ __metadata__: { format: 1 }, w: good })), f32(2)), 'METADATA'],
  ['__metadata__ not an object', build(utf8(JSON.stringify({ __metadata__: ['x'], w: good })), f32(2)), 'METADATA'],
  ['deeply nested metadata', build(`{"__metadata__":${'['.repeat(5000)}${']'.repeat(5000)}}`), 'JSON'],
  ['lone surrogate escape', build('{"w\\ud800":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32(2)), 'JSON'],
  ['control character in a name', build('{"w\x01":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32(2)), 'JSON'],
  ['data after the JSON value', build('{} {}'), 'JSON'],
];

describe('safetensors: malformed files', () => {
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-st-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [what, buf, code, tensor] of cases) {
    it(`${what} -> ERR_ONESTEP_SAFETENSORS_${code}`, () => {
      const file = path.join(dir, `${what.replace(/[^a-z0-9]+/gi, '_')}.safetensors`);
      fs.writeFileSync(file, buf);
      for (const load of [() => parseSafetensorsBuffer(buf, file), () => openSafetensors(file)]) {
        assert.throws(load, (e) => {
          assert.ok(e instanceof SafetensorsError, `not a SafetensorsError: ${e && e.stack}`);
          assert.strictEqual(e.code, `ERR_ONESTEP_SAFETENSORS_${code}`, e.message);
          assert.ok(e.message.includes(file), `message does not name the file: ${e.message}`);
          assert.strictEqual(e.file, file);
          if (tensor !== undefined) {
            assert.strictEqual(e.tensor, tensor);
            assert.ok(e.message.includes(`'${tensor}'`), `message does not name the tensor: ${e.message}`);
          }
          return true;
        });
      }
    });
  }

  it('a valid-but-unsupported dtype (F64) parses, and loading it names the tensor', () => {
    const file = path.join(dir, 'f64.safetensors');
    fs.writeFileSync(file, one({ dtype: 'F64', shape: [1], data_offsets: [0, 8] }, Buffer.alloc(8)));
    const f = openSafetensors(file);
    assert.deepStrictEqual(f.names(), ['w']);
    assert.throws(() => f.tensor('w'), (e) => e instanceof UnsupportedDtypeError && e.code === 'ERR_ONESTEP_SAFETENSORS_DTYPE' && /'w'/.test(e.message) && /F64/.test(e.message));
    f.close();
  });

  it('a tensor named __proto__ is just a name', () => {
    const file = path.join(dir, 'proto.safetensors');
    fs.writeFileSync(file, build('{"__proto__":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', Buffer.from(new Float32Array([1, 2]).buffer)));
    const f = openSafetensors(file);
    assert.deepStrictEqual(f.names(), ['__proto__']);
    assert.deepStrictEqual(Array.from(f.float32('__proto__')), [1, 2]);
    f.close();
  });

  it('header padded with trailing spaces and empty files are valid', () => {
    const h = buildHeader({ w: good });
    const padded = parseSafetensorsBuffer(build(`${h}      `, f32(2)));
    assert.deepStrictEqual(padded.tensors.get('w').shape, [2]);
    const empty = parseSafetensorsBuffer(build('{}'));
    assert.strictEqual(empty.tensors.size, 0);
    const zero = parseSafetensorsBuffer(build(utf8(JSON.stringify({ z: { dtype: 'F16', shape: [0, 3], data_offsets: [0, 0] } }))));
    assert.deepStrictEqual(zero.tensors.get('z').shape, [0, 3]);
  });

  it('a missing file is a FileNotFoundError', () => {
    assert.throws(() => openSafetensors(path.join(dir, 'nope.safetensors')), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND' && e.message.includes('nope.safetensors'));
  });
});

function buildHeader(obj) {
  return utf8(JSON.stringify(obj));
}
