// The torch-compatible CPU generator: every rng.json case bit-exact, plus the API's behaviour.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { TorchGenerator, DEFAULT_NORMAL_VARIANT } = require('../../dist/rng');
const { rngKind } = require('../../dist/golden/kinds/rng');
const { OnestepError, ArgumentError } = require('../../dist/errors');
const { addon } = require('../../dist/native');
const { floatToHalfBits, halfBitsToFloat } = require('../../dist/safetensors');
const { fixture } = require('../helpers/fixtures');

const rngJson = () => JSON.parse(fs.readFileSync(fixture('rng', 'rng.json'), 'utf8'));
const bits32 = (a) => Array.from(new Uint32Array(Float32Array.from(a).buffer));
const sameBits = (a, b) => assert.deepStrictEqual(bits32(a), bits32(b));

function throwsArgument(f, pattern) {
  assert.throws(f, (e) => {
    assert.ok(e instanceof OnestepError, `not an OnestepError: ${e && e.stack}`);
    assert.strictEqual(e.code, 'ERR_ONESTEP_ARGUMENT');
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

// Native errors are plain Errors with a code (lib wraps them); never a crash.
function nativeThrows(f) {
  assert.throws(f, (e) => e instanceof Error && e.code === 'ERR_ONESTEP_ARGUMENT');
}

describe('rng: golden fixtures (rng/rng.json)', () => {
  it('reproduces every entry bit for bit', async () => {
    const entries = rngJson().entries;
    const results = await rngKind.run(fixture('rng', 'rng.json'), { root: path.dirname(fixture('rng')), device: 'cpu' });
    assert.strictEqual(results.length, entries.length);
    const bad = results.filter((r) => r.status !== 'PASS' || r.metric !== 'mismatches' || r.value !== 0 || r.tol !== 0);
    assert.deepStrictEqual(bad, []);
    assert.strictEqual(new Set(results.map((r) => r.name)).size, results.length, 'case names must be unique');
    assert.ok(results.some((r) => r.name === 'avx2/randn.f32.seed0.1x4x128x128'));
    assert.ok(results.some((r) => r.name === 'generic/seq.d.randn_16'));
    assert.ok(results.some((r) => r.name === 'seq.e.randn_1'));
  });

  it('matches rng.json under the fixture-path rule only', () => {
    assert.ok(rngKind.matches('rng/rng.json'));
    assert.ok(rngKind.matches('copy/rng/rng.json'));
    assert.ok(!rngKind.matches('rng/other.json'));
    assert.ok(!rngKind.matches('golden/rng.json'));
  });

  describe('on a damaged copy', () => {
    let dir;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-rng-'));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('reports each damaged entry as FAIL with its mismatch count', async () => {
      const data = rngJson();
      const byKey = (k, v) => data.entries.find((e) => e.key === k && (v === undefined || e.variant === v));
      byKey('seq.e.randn_1').values[0] += 1e-7;
      byKey('randn.f32.seed42.2x4x8x8', 'avx2').sum_float64 += 1e-9;
      byKey('randint.seed0.0_10.16').values[3] = 7;
      fs.mkdirSync(path.join(dir, 'rng'));
      fs.writeFileSync(path.join(dir, 'rng', 'rng.json'), JSON.stringify(data));
      fs.copyFileSync(fixture('rng', 'rng.safetensors'), path.join(dir, 'rng', 'rng.safetensors'));
      const results = await rngKind.run(path.join(dir, 'rng', 'rng.json'), { root: dir, device: 'cpu' });
      const failed = results.filter((r) => r.status === 'FAIL');
      assert.deepStrictEqual(
        failed.map((r) => [r.name, r.value]).sort(),
        [['avx2/randn.f32.seed42.2x4x8x8', 1], ['randint.seed0.0_10.16', 1], ['seq.e.randn_1', 2]],  // seq.e: both variants
      );
      assert.match(failed.find((r) => r.name === 'randint.seed0.0_10.16').detail, /values\[3\]: got 0, expected 7/);
      assert.strictEqual(results.length - failed.length, data.entries.length - 3);
    });

    it('fails every entry (without throwing) when rng.safetensors is missing or the JSON is broken', async () => {
      fs.rmSync(path.join(dir, 'rng', 'rng.safetensors'));
      const results = await rngKind.run(path.join(dir, 'rng', 'rng.json'), { root: dir, device: 'cpu' });
      assert.strictEqual(results.length, rngJson().entries.length);
      assert.ok(results.every((r) => r.status === 'FAIL' && /rng\.safetensors/.test(r.detail)));
      fs.writeFileSync(path.join(dir, 'rng', 'rng.json'), '{ not json');
      const broken = await rngKind.run(path.join(dir, 'rng', 'rng.json'), { root: dir, device: 'cpu' });
      assert.strictEqual(broken.length, 1);
      assert.strictEqual(broken[0].status, 'FAIL');
    });
  });
});

describe('rng: TorchGenerator', () => {
  it('gives the first mt19937 outputs rng.json lists for seeds 0, 42 and 5489', () => {
    const first8 = rngJson().mt19937_first8_outputs;
    for (const seed of ['0', '42', '5489']) {
      assert.deepStrictEqual(Array.from(new TorchGenerator(Number(seed)).random(8)), first8[seed]);
    }
  });

  it('uses only the low 32 bits of the seed (4294967338 == 42), keeping all 64 as initialSeed', () => {
    for (const big of [4294967338, 4294967338n]) {
      const a = new TorchGenerator(big);
      const b = new TorchGenerator(42);
      sameBits(a.randn([1, 4, 8, 8]), b.randn([1, 4, 8, 8]));
      assert.deepStrictEqual(Array.from(a.random(4)), Array.from(b.random(4)));
      assert.strictEqual(a.initialSeed(), 4294967338n);
    }
    // negative seeds are two's complement, as torch.manual_seed(-1)
    const neg = new TorchGenerator(-1);
    assert.strictEqual(neg.initialSeed(), 2n ** 64n - 1n);
    assert.deepStrictEqual(Array.from(neg.random(4)), Array.from(new TorchGenerator(4294967295).random(4)));
    assert.strictEqual(new TorchGenerator().initialSeed(), 67280421310721n);
  });

  it('reproduces torch.manual_seed(0); torch.randn(16) and the fp16 variant (a different algorithm)', () => {
    const f32 = new TorchGenerator(0).randn(16);
    assert.ok(f32 instanceof Float32Array);
    assert.deepStrictEqual(Array.from(f32.slice(0, 3), (x) => x.toFixed(4)), ['-1.1258', '-1.1524', '-0.2506']);
    const f16 = new TorchGenerator(0).randn(16, { dtype: 'F16' });
    assert.ok(f16 instanceof Float32Array);
    assert.deepStrictEqual(Array.from(f16.slice(0, 3), (x) => x.toFixed(4)), ['-0.9009', '0.4812', '1.1982']);
    for (const x of f16) assert.strictEqual(halfBitsToFloat(floatToHalfBits(x)), x);  // exact halves
    const cast = Array.from(f32, (x) => halfBitsToFloat(floatToHalfBits(x)));
    assert.notDeepStrictEqual(Array.from(f16), cast);
    const f64 = new TorchGenerator(0).randn(16, { dtype: 'F64' });
    assert.ok(f64 instanceof Float64Array);
  });

  it('keeps the < 16-element path cached sample across calls; the >= 16 path neither uses nor clears it', () => {
    const ref = new TorchGenerator(7).randn(4);  // [c1, s1, c2, s2]
    const g = new TorchGenerator(7);
    assert.strictEqual(g.hasCachedNormal, false);
    const three = g.randn(3);
    sameBits(three, ref.slice(0, 3));
    assert.strictEqual(g.hasCachedNormal, true);
    const block = g.randn(16);
    assert.strictEqual(g.hasCachedNormal, true);
    sameBits(g.randn(1), [ref[3]]);
    assert.strictEqual(g.hasCachedNormal, false);
    // the cached value cost no engine output: the stream continues as after randn(4) + randn(16)
    const h = new TorchGenerator(7);
    h.randn(4);
    sameBits(h.randn(16), block);
    assert.deepStrictEqual(Array.from(g.random(3)), Array.from(h.random(3)));
  });

  it('clears the cached sample on manualSeed', () => {
    const g = new TorchGenerator(3);
    g.randn(3);
    assert.strictEqual(g.hasCachedNormal, true);
    assert.strictEqual(g.manualSeed(0), g);
    assert.strictEqual(g.hasCachedNormal, false);
    sameBits(g.randn(1), new TorchGenerator(0).randn(1));
    assert.strictEqual(g.initialSeed(), 0n);
  });

  it("defaults to the 'avx2' variant; 'generic' differs only for float32 tensors of >= 16 elements", () => {
    assert.strictEqual(DEFAULT_NORMAL_VARIANT, 'avx2');
    assert.strictEqual(new TorchGenerator(0).variant, 'avx2');
    const avx2 = new TorchGenerator(0).randn([2, 4, 8, 8]);
    const generic = new TorchGenerator(0, { variant: 'generic' }).randn([2, 4, 8, 8]);
    sameBits(new TorchGenerator(0).randn([2, 4, 8, 8], { variant: 'generic' }), generic);
    let differ = 0;
    for (let i = 0; i < avx2.length; i++) {
      if (avx2[i] !== generic[i]) differ++;
      assert.ok(Math.abs(avx2[i] - generic[i]) < 1e-5);
    }
    assert.ok(differ > 50 && differ < 400, `differ=${differ}`);
    sameBits(new TorchGenerator(0).randn(15), new TorchGenerator(0, { variant: 'generic' }).randn(15));
    sameBits(new TorchGenerator(0).randn(64, { dtype: 'F16' }), new TorchGenerator(0, { variant: 'generic' }).randn(64, { dtype: 'F16' }));
  });

  it('draws the size >= 16 tail as a fresh block over the last 16 positions', () => {
    // randn(17) consumes 33 outputs; its elements 1..16 come from the second draw
    const g = new TorchGenerator(11);
    const v = g.randn(17);
    const h = new TorchGenerator(11);
    h.random(17);
    const tail = h.randn(16);  // a fresh 16-element block from outputs 17..32
    sameBits(v.slice(1), tail);
    assert.deepStrictEqual(Array.from(g.random(2)), Array.from(h.random(2)));
  });

  it('rand and randint follow torch: 24/11/53-bit uniforms, random() % range, random64() for ranges >= 2^32', () => {
    const raw = new TorchGenerator(5).random(12);
    const f32 = new TorchGenerator(5).rand([4]);
    assert.deepStrictEqual(Array.from(f32), Array.from(raw.slice(0, 4), (r) => (r & 0xffffff) / 2 ** 24));
    const f16 = new TorchGenerator(5).rand([4], { dtype: 'F16' });
    assert.deepStrictEqual(Array.from(f16), Array.from(raw.slice(0, 4), (r) => (r & 0x7ff) / 2 ** 11));
    const f64 = new TorchGenerator(5).rand(2, { dtype: 'F64' });
    const r64 = (i) => (BigInt(raw[2 * i]) << 32n) | BigInt(raw[2 * i + 1]);
    assert.deepStrictEqual(Array.from(f64), [0, 1].map((i) => Number(r64(i) & (2n ** 53n - 1n)) / 2 ** 53));
    const small = new TorchGenerator(5).randint(-5, 5, [2, 3]);
    assert.ok(small instanceof BigInt64Array);
    assert.deepStrictEqual(Array.from(small), Array.from(raw.slice(0, 6), (r) => BigInt(r % 10) - 5n));
    const big = new TorchGenerator(5).randint(0n, 2n ** 40n, 3);
    assert.deepStrictEqual(Array.from(big), [0, 1, 2].map((i) => r64(i) % 2n ** 40n));
  });

  it('randn float64 follows the Box-Muller formula in double', () => {
    const g = new TorchGenerator(9);
    const v = g.randn(16, { dtype: 'F64' });
    const u = new TorchGenerator(9).rand(16, { dtype: 'F64' });
    for (let j = 0; j < 8; j++) {
      const r = Math.sqrt(-2 * Math.log(1 - u[j]));
      const t = 2 * Math.PI * u[j + 8];
      assert.ok(Math.abs(v[j] - r * Math.cos(t)) < 1e-14);
      assert.ok(Math.abs(v[j + 8] - r * Math.sin(t)) < 1e-14);
    }
  });

  it('saves and restores its state in torch.Generator.get_state() layout, cached sample included', () => {
    const g = new TorchGenerator(1234);
    g.randn(3);
    const state = g.getState();
    assert.ok(state instanceof Uint8Array);
    assert.strictEqual(state.length, 5056);
    const dv = new DataView(state.buffer, state.byteOffset);
    assert.strictEqual(dv.getBigUint64(0, true), 1234n);  // the_initial_seed
    assert.strictEqual(dv.getInt32(5040, true), 1);  // normal_is_valid
    const a = g.randn(5);
    const h = new TorchGenerator(99).setState(state);
    assert.strictEqual(h.hasCachedNormal, true);
    assert.strictEqual(h.initialSeed(), 1234n);
    sameBits(h.randn(5), a);
    throwsArgument(() => h.setState(new Uint8Array(100)), /5056/);
    const bad = state.slice();
    new DataView(bad.buffer).setInt32(8, 0, true);  // left = 0: invalid
    throwsArgument(() => h.setState(bad), /invalid mt19937 state/);
    const past = state.slice();
    new DataView(past.buffer).setInt32(8, 600, true);  // left 600 with next 7: reads would pass the array
    new DataView(past.buffer).setBigUint64(16, 624n, true);
    throwsArgument(() => h.setState(past), /invalid mt19937 state/);
    sameBits(h.randn(2), new TorchGenerator(1234).setState(g.getState()).randn(2));  // h unchanged by the refusals
  });

  it('returns empty arrays for empty shapes without consuming the stream', () => {
    const g = new TorchGenerator(0);
    assert.strictEqual(g.randn([0, 4]).length, 0);
    assert.strictEqual(g.rand([2, 0], { dtype: 'F64' }).length, 0);
    assert.strictEqual(g.randint(0, 3, []).length, 1);  // a 0-d tensor has one element
    assert.deepStrictEqual(Array.from(g.random(7)), rngJson().mt19937_first8_outputs['0'].slice(1));
  });

  it('rejects bad arguments with typed errors (code ERR_ONESTEP_ARGUMENT)', () => {
    const g = new TorchGenerator(0);
    throwsArgument(() => g.randn([-1]), /non-negative integers/);
    throwsArgument(() => g.randn([2, 1.5]));
    throwsArgument(() => g.randn(-3));
    throwsArgument(() => g.randn('16'));
    throwsArgument(() => g.randn([2 ** 20, 2 ** 20]), /more than/);
    throwsArgument(() => g.randn([4], { dtype: 'F8' }), /dtype/);
    throwsArgument(() => g.randn([4], { dtype: 'float32' }), /dtype/);
    throwsArgument(() => g.rand([4], { dtype: 'BF16' }), /dtype/);
    throwsArgument(() => g.randn([4], { variant: 'sse' }), /variant/);
    throwsArgument(() => new TorchGenerator(0, { variant: 'avx512' }), /variant/);
    for (const seed of [1.5, NaN, Infinity, '42', 2 ** 53, null, {}, 2n ** 64n, -(2n ** 63n) - 1n]) {
      throwsArgument(() => new TorchGenerator(seed), /seed/);
      throwsArgument(() => g.manualSeed(seed), /seed/);
    }
    throwsArgument(() => g.randint(5, 5, [2]), /less than/);
    throwsArgument(() => g.randint(0.5, 5, [2]));
    throwsArgument(() => g.randint(0, 2n ** 63n, [2]));
    throwsArgument(() => g.setState([1, 2, 3]));
    assert.ok(new ArgumentError('x') instanceof OnestepError);
    // the generator still works after all the refusals
    sameBits(g.randn(2), new TorchGenerator(0).randn(2));
  });

  it('validates at the native boundary too (no crash on any input)', () => {
    const { createGenerator } = addon();
    for (const seed of [1.5, -0.5, NaN, 2 ** 53, '1', undefined, 2n ** 64n]) nativeThrows(() => createGenerator(seed));
    nativeThrows(() => createGenerator());
    const g = createGenerator(2n ** 64n - 1n);
    nativeThrows(() => g.randn(-1, 'F32', 'avx2'));
    nativeThrows(() => g.randn(2 ** 28 + 1, 'F32', 'avx2'));
    nativeThrows(() => g.randn(4, 'F32'));
    nativeThrows(() => g.randn(4, 'I64', 'avx2'));
    nativeThrows(() => g.randn(4, 'F32', 'neon'));
    nativeThrows(() => g.rand(4));
    nativeThrows(() => g.randint(3, 2, 4));
    nativeThrows(() => g.randint(0, 2n ** 63n, 4));
    nativeThrows(() => g.randint(0, 1, 1.5));
    nativeThrows(() => g.random(-2));
    nativeThrows(() => g.setState(new Float32Array(1264)));
    nativeThrows(() => g.setState(new Uint8Array(5048)));  // legacy size, all-zero: not seeded
    nativeThrows(() => new g.constructor());
    assert.strictEqual(g.initialSeed(), 2n ** 64n - 1n);
  });
});
