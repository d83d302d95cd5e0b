// Child process of test/backend/thread_pool.test.js: runs small graphs (layer_norm, then linear
// layers whose row counts take both GEMM work splits: one row block, and many blocks; the first
// weight F16, its panels converted in the micro-kernel; few rows on many panels, and on few but
// deep; a conv2d by
// Winograd, its tiles in blocks split over the threads; a conv2d by the narrow GEMM) many times, one
// graph at a time and then all at once
// on the pool the environment sets up (ONESTEP_NUM_THREADS, ONESTEP_SPIN_US), and prints, per row
// count, a digest of the output, the number of runs whose output differed from the first, and the
// output's distance from the float64 reference.
'use strict';
const crypto = require('crypto');
const { GraphBuilder, Act } = require('../../dist/graph');
const { addon } = require('../../dist/native');
const { Rng } = require('./random');
const ref = require('./reference_ops');
const { decodeToFloat32, encodeFromFloat32 } = require('../../dist/safetensors');

const [seed, runs, ...rowCounts] = process.argv.slice(2).map(Number);
const rng = new Rng(seed);
const K = 96, H = 200, N = 40;

(async () => {
  const results = {};
  const cases = [];
  for (const M of rowCounts) {
    const x = rng.float32Array(M * K), gamma = rng.float32Array(K), beta = rng.float32Array(K);
    const w1 = rng.float32Array(H * K, 0.2), b1 = rng.float32Array(H), w2 = rng.float32Array(N * H, 0.2);
    const t = (shape, v, dtype = 'F32') => addon().tensorFromFloat32(dtype, shape, v);
    const w1h = decodeToFloat32('F16', encodeFromFloat32('F16', w1)); // the values the engine sees
    const g = new GraphBuilder({ device: 'cpu' });
    const h = g.layerNorm(g.input('x', [M, K]), t([K], gamma), t([K], beta), 1e-5);
    g.output('y', g.linear(g.linear(h, t([H, K], w1, 'F16'), t([H], b1), { act: Act.Gelu }), t([N, H], w2)));
    cases.push({ M, x, graph: g.build(), first: undefined, differing: 0 });
    const hn = ref.layerNorm(x, [M, K], gamma, beta, 1e-5);
    cases[cases.length - 1].want = ref.linear(ref.linear(hn, [M, K], w1h, [H, K], b1, Act.Gelu), [M, H], w2, [N, H]);
  }
  // few rows on many panels: 40 rows to 1600 columns (50 panels: on up to 3 threads each packs its
  // own A), two depth blocks, bias, GELU and a residual
  {
    const M = 40, Kw = 500, Nw = 1600;
    const x = rng.float32Array(M * Kw), w = rng.float32Array(Nw * Kw, 0.1), b = rng.float32Array(Nw), r = rng.float32Array(M * Nw);
    const t = (shape, v) => addon().tensorFromFloat32('F32', shape, v);
    const g = new GraphBuilder({ device: 'cpu' });
    g.output('y', g.linear(g.input('x', [M, Kw]), t([Nw, Kw], w), t([Nw], b), { act: Act.Gelu, residual: g.constant(t([M, Nw], r)) }));
    cases.push({ M: 'few_rows_wide', x, graph: g.build(), first: undefined, differing: 0, want: ref.linear(x, [M, Kw], w, [Nw, Kw], b, Act.Gelu, r) });
  }
  // few rows on few panels and deep: 30 rows to 100 columns over 1300 (A packed once for all
  // threads, or by the one thread; depth blocks in groups on AVX-512)
  {
    const M = 30, Kd = 1300, Nd = 100;
    const x = rng.float32Array(M * Kd), w = rng.float32Array(Nd * Kd, 0.05), b = rng.float32Array(Nd);
    const t = (shape, v) => addon().tensorFromFloat32('F32', shape, v);
    const g = new GraphBuilder({ device: 'cpu' });
    g.output('y', g.linear(g.input('x', [M, Kd]), t([Nd, Kd], w), t([Nd], b)));
    cases.push({ M: 'few_rows_deep', x, graph: g.build(), first: undefined, differing: 0, want: ref.linear(x, [M, Kd], w, [Nd, Kd], b) });
  }
  // a 3x3 convolution by Winograd, F(2x2, 3x3) then F(4x4, 3x3): 19 x 15 (10 x 8) tiles in blocks
  // balanced over the threads
  const { setWinogradPolicy } = require('../../dist/graph');
  for (const [policy, algorithm] of [['always', 'winograd'], ['f4x4', 'winograd_f4x4']]) {
    const xs = [1, 38, 30, 24], co = 40;
    const x = rng.float32Array(xs.reduce((a, b) => a * b)), w = rng.float32Array(co * xs[3] * 9, 0.2), b = rng.float32Array(co);
    const wh = decodeToFloat32('F16', encodeFromFloat32('F16', w));
    setWinogradPolicy(policy);
    const g = new GraphBuilder({ device: 'cpu' });
    g.output('y', g.conv2d(g.input('x', xs), addon().tensorFromFloat32('F16', [co, xs[3], 3, 3], w), addon().tensorFromFloat32('F32', [co], b), { padding: 1, act: Act.Silu }));
    const graph = g.build();
    const got = (await graph.placements())[0].algorithm;
    setWinogradPolicy('auto');
    if (got !== algorithm) throw new Error(`the conv ran by ${got}, not ${algorithm}`);
    cases.push({ M: algorithm, x, graph, first: undefined, differing: 0, want: ref.conv2d(x, xs, wh, [co, xs[3], 3, 3], b, { stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Silu }).y });
  }
  // a conv to 3 channels by the narrow GEMM (where the kernel has one): 210 rows in blocks of 48
  // over the threads
  if (addon().gemmInfo().narrow) {
    const xs = [1, 15, 14, 40], co = 3;
    const x = rng.float32Array(xs.reduce((a, b) => a * b)), w = rng.float32Array(co * xs[3] * 9, 0.2), b = rng.float32Array(co);
    const g = new GraphBuilder({ device: 'cpu' });
    g.output('y', g.conv2d(g.input('x', xs), addon().tensorFromFloat32('F32', [co, xs[3], 3, 3], w), addon().tensorFromFloat32('F32', [co], b), { padding: 1 }));
    const graph = g.build();
    const got = (await graph.placements())[0].algorithm;
    if (got !== 'narrow_gemm') throw new Error(`the conv ran by ${got}, not narrow_gemm`);
    cases.push({ M: got, x, graph, first: undefined, differing: 0, want: ref.conv2d(x, xs, w, [co, xs[3], 3, 3], b, { stride: [1, 1], pad: [1, 1, 1, 1], up: 1 }).y });
  }
  const runOnce = async (c) => {
    const out = await c.graph.run({ x: c.x });
    const y = out.y.toFloat32();
    out.y.dispose();
    if (!c.first) c.first = y;
    else if (Buffer.compare(Buffer.from(y.buffer), Buffer.from(c.first.buffer)) !== 0) c.differing++;
  };
  // each graph alone, then all of them at once (their runs start loops on the pool from several
  // threads, which take turns)
  for (const c of cases) for (let r = 0; r < runs; r++) await runOnce(c);
  for (let r = 0; r < runs; r++) await Promise.all(cases.map(runOnce));
  for (const c of cases) {
    c.graph.dispose();
    results[c.M] = { digest: crypto.createHash('sha256').update(Buffer.from(c.first.buffer)).digest('hex'), differing: c.differing, relL2: ref.relL2(c.first, c.want) };
  }
  console.log(JSON.stringify(results));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
