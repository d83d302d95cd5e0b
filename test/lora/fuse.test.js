// The native fusion op against a float64 reference on fresh random tensors: every dtype of base and
// LoRA tensors, linear and conv weights, several parts, the output dtype, writing into a previous
// fusion, and its refusals.
'use strict';
const assert = require('assert');
const { addon } = require('../../dist/native');
const { openSafetensors } = require('../..');
const { fixture } = require('../helpers/fixtures');
const { Rng } = require('../helpers/random');

const relL2 = (a, b) => {
  let n = 0;
  let d = 0;
  for (let i = 0; i < b.length; i++) {
    n += (a[i] - b[i]) ** 2;
    d += b[i] ** 2;
  }
  return Math.sqrt(n / d);
};

function reference(w, N, K, parts) {
  const out = Float64Array.from(w);
  for (const { down, up, r, factor } of parts) {
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
      let s = 0;
      for (let j = 0; j < r; j++) s += up[n * r + j] * down[j * K + k];
      out[n * K + k] += factor * s;
    }
  }
  return out;
}

describe('lora: fuseLora (native)', () => {
  const rng = new Rng();
  const a = addon();
  const tensor = (dtype, shape, scale = 1) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const t = a.tensorFromFloat32(dtype, shape, rng.float32Array(n, scale));
    return { t, v: t.toFloat32() }; // the values as stored (rounded to the dtype)
  };

  for (const [baseDtype, loraDtype, shape, ranks] of [
    ['F32', 'F32', [37, 29], [4]],
    ['F16', 'F16', [24, 16, 3, 3], [4, 2]],
    ['BF16', 'BF16', [40, 33], [8, 1, 3]],
    ['F16', 'F32', [19, 7, 1, 1], [5]],
    ['BF16', 'F16', [64, 130], [16]],
  ]) {
    it(`W ${baseDtype}${JSON.stringify(shape)} + ${ranks.length} ${loraDtype} parts of rank ${ranks.join('/')} (seed ${rng.seed})`, () => {
      const N = shape[0];
      const K = shape.slice(1).reduce((x, y) => x * y, 1);
      const base = tensor(baseDtype, shape);
      const parts = ranks.map((r) => {
        const down = tensor(loraDtype, shape.length === 4 ? [r, ...shape.slice(1)] : [r, K], 0.3);
        const up = tensor(loraDtype, shape.length === 4 ? [N, r, 1, 1] : [N, r], 0.3);
        return { down: down.t, up: up.t, dv: down.v, uv: up.v, r, factor: rng.normal() };
      });
      const want = reference(base.v, N, K, parts.map((p) => ({ down: p.dv, up: p.uv, r: p.r, factor: p.factor })));
      const f32 = a.fuseLora(base.t, parts, 'w', 'F32');
      assert.deepStrictEqual([f32.dtype, f32.shape], ['F32', shape]);
      const e = relL2(f32.toFloat32(), want);
      assert.ok(e < 1e-6, `F32 output: rel L2 ${e}`);
      // the base dtype: the float32 result rounded once
      const same = a.fuseLora(base.t, parts, 'w');
      assert.strictEqual(same.dtype, baseDtype);
      assert.deepStrictEqual(Array.from(same.toFloat32()), Array.from(a.tensorFromFloat32(baseDtype, shape, f32.toFloat32()).toFloat32()));
      // into a previous fusion: the same bytes, the same object; no parts = the base converted
      const into = a.fuseLora(base.t, [], 'w', 'F32');
      assert.deepStrictEqual(Array.from(into.toFloat32()), Array.from(base.v));
      assert.strictEqual(a.fuseLora(base.t, parts, 'w', 'F32', into), into);
      assert.ok(into.bytes().equals(f32.bytes()));
    });
  }

  it('refuses what does not fit, before writing anything, naming the weight', () => {
    const base = tensor('F32', [6, 10]).t;
    const ok = { down: tensor('F32', [2, 10]).t, up: tensor('F32', [6, 2]).t, factor: 1 };
    const into = a.fuseLora(base, [ok], 'w', 'F32');
    const before = into.bytes();
    const bad = (parts, dtype = 'F32', target = into) => () => a.fuseLora(base, parts, 'mid.to_q.weight', dtype, target);
    const lora = (e) => e.code === 'ERR_ONESTEP_LORA' && /mid\.to_q\.weight/.test(e.message);
    assert.throws(bad([ok, { down: tensor('F32', [2, 9]).t, up: ok.up, factor: 1 }]), (e) => lora(e) && /down \[2, 9\] does not match the weight \[6, 10\]/.test(e.message));
    assert.throws(bad([ok, { down: ok.down, up: tensor('F32', [6, 3]).t, factor: 1 }]), (e) => lora(e) && /up \[6, 3\] must be \[6, 2\]/.test(e.message));
    assert.throws(bad([{ down: tensor('F32', [20]).t, up: ok.up, factor: 1 }]), (e) => lora(e) && /2-D or 4-D/.test(e.message));
    assert.throws(bad([ok], 'F16'), (e) => lora(e) && /tensor to fuse into is F32\[6, 10\], expected F16\[6, 10\]/.test(e.message));
    assert.throws(bad([ok], 'I64', undefined), (e) => lora(e) && /F32, F16 or BF16/.test(e.message));
    assert.throws(() => a.fuseLora(tensor('F32', [7]).t, [], 'b'), (e) => e.code === 'ERR_ONESTEP_LORA' && /2-D or 4-D weight/.test(e.message));
    assert.throws(() => a.fuseLora(base, [{ ...ok, factor: NaN }], 'w'), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /finite/.test(e.message));
    assert.ok(into.bytes().equals(before), 'nothing was written');
    // a read-only view of a mapped file is never written
    const f = openSafetensors(fixture('lora', 'sd15_lora_peft.safetensors'));
    const key = f.names().find((k) => f.info(k).dtype === 'F32' && f.info(k).shape.length === 2);
    const view = f.tensor(key);
    const [n, k] = view.shape;
    assert.throws(() => a.fuseLora(a.tensorFromFloat32('F32', [n, k], rng.float32Array(n * k)), [], 'w', 'F32', view), (e) => e.code === 'ERR_ONESTEP_READONLY');
    f.close();
  });

  // deferred fusions (docs/LORA.md, "On the GPU"): on the CPU their host bytes are made on first
  // read, bit for bit fuseLora's; a graph reading one computes with them
  it('deferLoraFusion: host bytes made on first read (fuseLora\'s bit for bit), a CPU graph computes with them, a new definition is made again', async () => {
    const { GraphBuilder } = require('../../dist/graph');
    const base = tensor('F16', [12, 20]).t;
    const parts = (f) => [{ down: tensor('F16', [3, 20], 0.3).t, up: tensor('F16', [12, 3], 0.3).t, factor: f }];
    const p1 = parts(rng.normal());
    const d = a.deferLoraFusion(base, p1, 'w', 'F32');
    assert.deepStrictEqual([d.tensor.dtype, d.tensor.shape, d.hostWasRead], ['F32', [12, 20], false]);
    const fused = a.fuseLora(base, p1, 'w', 'F32');
    // a CPU graph reading the deferred weight: its plan makes the bytes first
    const x = rng.float32Array(5 * 20);
    const run = async (w) => {
      const g = new GraphBuilder({ device: 'cpu' });
      g.output('y', g.linear(g.input('x', [5, 20]), w));
      const graph = g.build();
      const y = (await graph.run({ x })).y.toFloat32();
      graph.dispose();
      return y;
    };
    assert.deepStrictEqual(Array.from(await run(d.tensor)), Array.from(await run(fused)));
    assert.ok(d.tensor.bytes().equals(fused.bytes()));
    // a new definition into it: the host bytes had been made (hostWasRead), and are made again
    const p2 = parts(rng.normal());
    const again = a.deferLoraFusion(base, p2, 'w', 'F32', d.tensor);
    assert.strictEqual(again.tensor, d.tensor);
    assert.strictEqual(again.hostWasRead, true);
    assert.ok(d.tensor.bytes().equals(a.fuseLora(base, p2, 'w', 'F32').bytes()));
    // fuseLora's checks, before anything changes; `into` must be a deferred fusion
    const lora = (e) => e.code === 'ERR_ONESTEP_LORA' && /'w'/.test(e.message);
    assert.throws(() => a.deferLoraFusion(base, [{ ...p2[0], down: tensor('F16', [3, 19]).t }], 'w', 'F32', d.tensor), (e) => lora(e) && /does not match the weight/.test(e.message));
    assert.throws(() => a.deferLoraFusion(base, p2, 'w', 'F32', fused), (e) => lora(e) && /not a deferred fusion/.test(e.message));
    assert.throws(() => a.deferLoraFusion(base, p2, 'w', 'F16', d.tensor), (e) => lora(e) && /expected F16\[12, 20\]/.test(e.message));
    // a deferred fusion is never the input of another (its host bytes are not what it defines until read)
    assert.throws(() => a.deferLoraFusion(d.tensor, [], 'w2', 'F32'), (e) => e.code === 'ERR_ONESTEP_LORA' && /itself a deferred fusion/.test(e.message));
    // the GPU's limit on adapters per weight, before anything changes
    const many = Array.from({ length: 49 }, () => p2[0]);
    assert.throws(() => a.deferLoraFusion(base, many, 'w', 'F32', d.tensor), (e) => lora(e) && /49 adapters on one weight; the GPU fuses at most 48/.test(e.message));
    assert.ok(d.tensor.bytes().equals(a.fuseLora(base, p2, 'w', 'F32').bytes()), 'unchanged by the refused calls');
    // once host bytes were made, every later definition says so (CPU plans may hold their forms)
    assert.strictEqual(a.deferLoraFusion(base, p1, 'w', 'F32', d.tensor).hostWasRead, true);
    assert.strictEqual(a.deferLoraFusion(base, p2, 'w', 'F32', d.tensor).hostWasRead, true);
    // fuseLora reads a deferred input as what it defines
    assert.ok(a.fuseLora(d.tensor, [], 'w3', 'F32').bytes().equals(a.fuseLora(base, p2, 'w', 'F32').bytes()));
  });
});
