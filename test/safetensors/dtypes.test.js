// float16 / bfloat16 conversions: the native converters and the JS ones agree on fresh random
// inputs, and both round as IEEE requires on the known edge cases.
'use strict';
const assert = require('assert');
const { addon } = require('../../dist/native');
const { floatToHalfBits, halfBitsToFloat, floatToBf16Bits, bf16BitsToFloat } = require('../../dist/safetensors');
const { Rng } = require('../helpers/random');

function nativeBits(dtype, values) {
  const b = addon().tensorFromFloat32(dtype, [values.length], Float32Array.from(values)).bytes();
  return Array.from({ length: values.length }, (_, i) => b.readUInt16LE(2 * i));
}

describe('dtype conversions', () => {
  it('float16 edge cases round to nearest even', () => {
    const cases = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -25 * 1.0001, 0x0001], [3 * 2 ** -25, 0x0002],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [0, 0], [-0, 0x8000],
    ];
    const native = nativeBits('F16', cases.map((c) => c[0]));
    cases.forEach(([v, bits], i) => {
      assert.strictEqual(floatToHalfBits(v), bits, `js ${v}`);
      assert.strictEqual(native[i], bits, `native ${v}`);
    });
    assert.ok(floatToHalfBits(NaN) > 0x7c00 && nativeBits('F16', [NaN])[0] > 0x7c00);
  });

  it('every float16 value round-trips through both converters', () => {
    const all = Array.from({ length: 65536 }, (_, h) => h).filter((h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0);
    const values = all.map(halfBitsToFloat);
    const native = nativeBits('F16', values);
    const back = addon().tensorFromBytes('F16', [all.length], Uint16Array.from(all)).toFloat32();
    all.forEach((h, i) => {
      assert.strictEqual(floatToHalfBits(values[i]), h);
      assert.strictEqual(native[i], h);
      assert.ok(Object.is(back[i], Math.fround(values[i])), `native decode of ${h.toString(16)}`);
    });
  });

  it('native and JS agree on fresh random float32 bit patterns (F16 and BF16)', () => {
    const rng = new Rng();
    const n = 200000;
    const u = new Uint32Array(n);
    for (let i = 0; i < n; i++) u[i] = Math.floor(rng.next() * 2 ** 32);
    const f = new Float32Array(u.buffer);
    const vals = Array.from(f).filter((x) => !Number.isNaN(x));
    for (const [dtype, js, dec] of [['F16', floatToHalfBits, halfBitsToFloat], ['BF16', floatToBf16Bits, bf16BitsToFloat]]) {
      const native = nativeBits(dtype, vals);
      const back = addon().tensorFromFloat32(dtype, [vals.length], Float32Array.from(vals)).toFloat32();
      for (let i = 0; i < vals.length; i++) {
        assert.strictEqual(native[i], js(vals[i]), `seed ${rng.seed}: ${dtype} of ${vals[i]}`);
        assert.ok(Object.is(back[i], Math.fround(dec(native[i]))), `seed ${rng.seed}: ${dtype} decode`);
      }
    }
  });

  it('bfloat16 rounds to nearest even', () => {
    assert.strictEqual(floatToBf16Bits(1), 0x3f80);
    assert.strictEqual(floatToBf16Bits(1 + 2 ** -8), 0x3f80);  // tie -> even
    assert.strictEqual(floatToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);  // tie -> even (up)
    assert.strictEqual(floatToBf16Bits(1 + 2 ** -8 + 2 ** -20), 0x3f81);
  });

  it('tensorFromFloat32 checks its arguments', () => {
    const a = addon();
    assert.throws(() => a.tensorFromFloat32('F32', [3], new Float32Array(2)), (e) => e.code === 'ERR_ONESTEP_SHAPE');
    assert.throws(() => a.tensorFromFloat32('Q4', [1], new Float32Array(1)), (e) => e.code === 'ERR_ONESTEP_DTYPE');
    assert.throws(() => a.tensorFromFloat32('F32', [1], [1]), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => a.tensorFromFloat32('F32', [1.5], new Float32Array(1)), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => a.tensorFromBytes('F16', [3], new Uint8Array(5)), (e) => e.code === 'ERR_ONESTEP_SHAPE');
  });
});
