// Child process of test/backend/thread_pool.test.js: runs small graphs (layer_norm, then linear
// layers whose row counts take both GEMM work splits: one row block, and many blocks; the first
// weight F16, whose panels are widened to float in groups under full row blocks) many times
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
  for (const M of rowCounts) {
    const x = rng.float32Array(M * K), gamma = rng.float32Array(K), beta = rng.float32Array(K);
    const w1 = rng.float32Array(H * K, 0.2), b1 = rng.float32Array(H), w2 = rng.float32Array(N * H, 0.2);
    const t = (shape, v, dtype = 'F32') => addon().tensorFromFloat32(dtype, shape, v);
    const w1h = decodeToFloat32('F16', encodeFromFloat32('F16', w1)); // the values the engine sees
    const g = new GraphBuilder({ device: 'cpu' });
    const h = g.layerNorm(g.input('x', [M, K]), t([K], gamma), t([K], beta), 1e-5);
    g.output('y', g.linear(g.linear(h, t([H, K], w1, 'F16'), t([H], b1), { act: Act.Gelu }), t([N, H], w2)));
    const graph = g.build();
    let first, differing = 0;
    for (let r = 0; r < runs; r++) {
      const out = await graph.run({ x });
      const y = out.y.toFloat32();
      out.y.dispose();
      if (!first) first = y;
      else if (Buffer.compare(Buffer.from(y.buffer), Buffer.from(first.buffer)) !== 0) differing++;
    }
    graph.dispose();
    const hn = ref.layerNorm(x, [M, K], gamma, beta, 1e-5);
    const want = ref.linear(ref.linear(hn, [M, K], w1h, [H, K], b1, Act.Gelu), [M, H], w2, [N, H]);
    results[M] = { digest: crypto.createHash('sha256').update(Buffer.from(first.buffer)).digest('hex'), differing, relL2: ref.relL2(first, want) };
  }
  console.log(JSON.stringify(results));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
