// The graph executor: validation of what it is handed, errors at run time, runs off the JS
// thread, serialised concurrent runs.
'use strict';
const assert = require('assert');
const { GraphBuilder, Act } = require('../../dist/graph');
const { addon } = require('../../dist/native');
const { Rng } = require('../helpers/random');

const rng = new Rng();
const spec = (over = {}) => ({
  values: [
    { kind: 0, dtype: 'F32', shape: [2, 3], name: 'x' },
    { kind: 1, dtype: 'F32', shape: [4, 3], name: 'w', const: 0 },
    { kind: 2, dtype: 'F32', shape: [2, 4], name: 'y' },
  ],
  consts: [addon().tensorFromFloat32('F32', [4, 3], rng.float32Array(12))],
  nodes: [{ op: 0, inputs: [0, 1], attrs: [0], output: 2 }],
  inputs: [0],
  outputs: [2],
  ...over,
});

describe('graph executor', () => {
  it('accepts a valid spec and runs it', async () => {
    const g = await addon().createGraph(spec());
    const [y] = await g.run([addon().tensorFromFloat32('F32', [2, 3], rng.float32Array(6))]);
    assert.deepStrictEqual(y.shape, [2, 4]);
  });

  const bad = [
    ['an unknown op code', { nodes: [{ op: 999, inputs: [0, 1], attrs: [0], output: 2 }] }, /op/],
    ['a declared shape that differs from the op', { values: [...spec().values.slice(0, 2), { kind: 2, dtype: 'F32', shape: [2, 5], name: 'y' }] }, /declared shape \[2, 5\] but the op gives \[2, 4\]/],
    ['a value used before it is computed', { nodes: [{ op: 0, inputs: [2, 1], attrs: [0], output: 2 }] }, /used before it is computed/],
    ['a value id out of range', { nodes: [{ op: 0, inputs: [0, 7], attrs: [0], output: 2 }] }, /node input|refers to value/],
    ['a missing required input', { nodes: [{ op: 0, inputs: [0, -1], attrs: [0], output: 2 }] }, /required/],
    ['the wrong number of attributes', { nodes: [{ op: 0, inputs: [0, 1], attrs: [], output: 2 }] }, /attributes/],
    ['an activation code out of range', { nodes: [{ op: 0, inputs: [0, 1], attrs: [42], output: 2 }] }, /act/],
    ['a const whose tensor differs from its declaration', { consts: [addon().tensorFromFloat32('F32', [3, 3], new Float32Array(9))] }, /constant 'w'/],
    ['no outputs', { outputs: [] }, /no outputs/],
    ['an output that is an input', { outputs: [0] }, /computed value/],
    ['an input missing from the input list', { inputs: [] }, /not in the input list/],
    ['NaN attributes', { nodes: [{ op: 0, inputs: [0, 1], attrs: [NaN], output: 2 }] }, /NaN/],
    ['a GEMM operand type other than F16 or BF16', { gemmOperand: 'F32' }, /gemmOperand must be 'F16' or 'BF16', got 'F32'/],
  ];
  // a malformed spec throws at once; what only validation finds rejects the compilation (off the JS thread)
  for (const [what, over, msg] of bad) {
    it(`refuses ${what} with ERR_ONESTEP_GRAPH`, async () => {
      const ok = (e) => (e.code === 'ERR_ONESTEP_GRAPH' || e.code === 'ERR_ONESTEP_ARGUMENT') && msg.test(e.message);
      let compiling;
      try {
        compiling = addon().createGraph(spec(over));
      } catch (e) {
        assert.ok(ok(e), `${what}: ${e.message}`);
        return;
      }
      await assert.rejects(compiling, ok, what);
    });
  }

  it('refuses inputs of the wrong shape or dtype at run time', async () => {
    const g = await addon().createGraph(spec());
    await assert.rejects(g.run([addon().tensorFromFloat32('F32', [3, 3], new Float32Array(9))]), (e) => e.code === 'ERR_ONESTEP_GRAPH' && /input 'x'/.test(e.message));
    await assert.rejects(g.run([]), (e) => e.code === 'ERR_ONESTEP_GRAPH');
    assert.throws(() => g.run([{}]), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
  });

  it('an embedding id out of range rejects the run with ERR_ONESTEP_VALUE', async () => {
    const b = new GraphBuilder();
    const ids = b.input('ids', [3], 'I64');
    b.output('y', b.embedding(ids, addon().tensorFromFloat32('F32', [10, 2], new Float32Array(20))));
    const g = b.build();
    await assert.rejects(g.run({ ids: BigInt64Array.from([1n, 10n, 2n]) }), (e) => e.code === 'ERR_ONESTEP_VALUE' && /id 10/.test(e.message));
    const ok = await g.run({ ids: BigInt64Array.from([1n, 9n, 2n]) });
    assert.deepStrictEqual(ok.y.shape, [3, 2]);
  });

  it('the builder names the op and shapes on misuse', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [2, 3]);
    assert.throws(() => b.linear(x, addon().tensorFromFloat32('F32', [4, 5], new Float32Array(20))), /linear: x \[2, 3\] does not match w \[4, 5\]/);
    assert.throws(() => b.add(x, b.input('z', [4])), /add: b \[4\] does not broadcast/);
    assert.throws(() => b.input('x', [1]), /declared twice/);
  });

  it('runs off the JS thread: timers keep firing during a long run', async () => {
    const n = 1536;
    const b = new GraphBuilder();
    let v = b.input('x', [n, n]);
    const w = addon().tensorFromFloat32('F32', [n, n], rng.float32Array(n * n, 0.02));
    for (let i = 0; i < 6; i++) v = b.linear(v, w, undefined, { act: Act.Tanh });
    b.output('y', v);
    const g = b.build();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const t0 = Date.now();
    await g.run({ x: rng.float32Array(n * n) });
    const ms = Date.now() - t0;
    clearInterval(timer);
    assert.ok(ms > 50, `the run took only ${ms} ms; make it longer`);
    assert.ok(ticks >= Math.floor(ms / 5 / 4), `${ticks} ticks in ${ms} ms: the event loop was blocked`);
    g.dispose();
  });

  it('concurrent runs of one graph are serialised and each is correct', async () => {
    const b = new GraphBuilder();
    const x = b.input('x', [64, 32]);
    b.output('y', b.linear(x, addon().tensorFromFloat32('F32', [16, 32], rng.float32Array(512)), undefined, { act: Act.Silu }));
    const g = b.build();
    const inputs = Array.from({ length: 8 }, () => rng.float32Array(64 * 32));
    const serial = [];
    for (const x0 of inputs) serial.push(Array.from((await g.run({ x: x0 })).y.toFloat32()));
    const parallel = await Promise.all(inputs.map((x0) => g.run({ x: x0 })));
    parallel.forEach((r, i) => assert.deepStrictEqual(Array.from(r.y.toFloat32()), serial[i]));
  });

  it('the weight forms a plan makes are returned to the OS when the last graph using them goes', () => {
    // in a process of its own (this one's RSS moves with every earlier test): 24 F32 weights of
    // 4 MB, whose prepacked forms (every GEMM kernel packs F32 weights at plan time) are ~100 MB
    const script = `
      const { GraphBuilder } = require('./dist/graph');
      const { addon } = require('./dist/native');
      const rss = () => process.memoryUsage().rss / 2 ** 20;
      (async () => {
        const weights = Array.from({ length: 24 }, (_, i) => addon().randomTensor('F32', [1024, 1024], i, 0, 0.05));
        const build = () => {
          const b = new GraphBuilder();
          let x = b.input('x', [4, 1024]);
          for (const w of weights) x = b.linear(x, w);
          b.output('y', x);
          return b.build();
        };
        const x = new Float32Array(4 * 1024).fill(0.5);
        const before = rss();
        const g1 = build();
        const g2 = build(); // a second graph shares the forms
        await g1.run({ x });
        await g2.run({ x });
        const held = rss();
        g1.dispose();
        const one = rss();
        g2.dispose();
        await new Promise((r) => setTimeout(r, 50));
        console.log(JSON.stringify({ before, held, one, after: rss() }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const r = require('child_process').spawnSync(process.execPath, ['-e', script], { cwd: require('path').join(__dirname, '..', '..'), encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    const { before, held, one, after } = JSON.parse(r.stdout.trim().split('\n').pop());
    assert.ok(held - before > 60, `the forms took ${(held - before).toFixed(0)} MB`);
    assert.ok(held - one < 20, `the forms were freed while a graph still used them (${(held - one).toFixed(0)} MB)`);
    assert.ok(held - after > 60, `only ${(held - after).toFixed(0)} of ${(held - before).toFixed(0)} MB came back after both graphs were disposed`);
  });

  it('a disposed graph refuses to run', async () => {
    const g = new GraphBuilder();
    g.output('y', g.affine(g.input('x', [2]), 2));
    const c = g.build();
    c.dispose();
    await assert.rejects(c.run({ x: new Float32Array(2) }), (e) => e.code === 'ERR_ONESTEP_DISPOSED');
  });
});
