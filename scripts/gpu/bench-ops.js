#!/usr/bin/env node
// Micro-benchmarks of our GEMM, 3x3 convolution, attention and group-norm (+ SiLU) nodes at the shapes of
// scripts/gpu/ops.json, each a one-op graph on --device (default cuda) with fresh random inputs:
// per-op time = (time of R runs - time of 1 run) / (R - 1) in one call each, so the input and
// output copies cancel. With --torch FILE (torch_ops.py's output) it prints ours / torch. The
// vendor libraries are used where info() says they loaded (ONESTEP_CUBLASLT=none ONESTEP_CUDNN=none:
// the own kernels only).
//   node scripts/gpu/bench-ops.js [--device cuda] [--repeat 50] [--torch torch.json] [--json out.json] [--only attention,...]
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.resolve(__dirname, '..', '..');
const { GraphBuilder, Act } = require(path.join(root, 'dist', 'graph'));
const { addon } = require(path.join(root, 'dist', 'native'));

const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1] : d);
const device = opt('device', 'cuda');
const R = Number(opt('repeat', 50));
const shapes = JSON.parse(fs.readFileSync(path.join(__dirname, 'ops.json'), 'utf8'));
const torch = opt('torch') ? JSON.parse(fs.readFileSync(opt('torch'), 'utf8')) : {};
const only = opt('only') ? opt('only').split(',') : null;  // op kinds to time (gemm, conv, attention, group_norm)
const wanted = (kind) => !only || only.includes(kind);

const rand = (shape, dtype = 'F32', scale = 1) => addon().randomTensor(dtype, shape, (Math.random() * 2 ** 31) >>> 0, 0, scale);

async function timeGraph(build, inputs) {
  const g = new GraphBuilder({ device });
  const vals = {};
  for (const [k, t] of Object.entries(inputs)) vals[k] = g.input(k, t.shape);
  g.output('y', build(g, vals));
  const graph = g.build();
  const once = async (repeat) => {
    const t0 = process.hrtime.bigint();
    const out = await graph.run(inputs, { repeat });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    out.y.dispose();
    return ms;
  };
  await once(1); // warm: uploads, capture
  const t1 = Math.min(await once(1), await once(1));
  const tr = Math.min(await once(R), await once(R));
  graph.dispose();
  return Math.max(1e-6, (tr - t1) / (R - 1));
}

async function main() {
  const rows = [];
  // flops for the compute-bound ops, bytes (read + write, as stored) for the memory-bound ones
  const report = (kind, key, ms, flops, bytes = 0) => {
    const t = torch[`${kind} ${key}`];
    const ratio = t ? `  torch ${t.toFixed(3)} ms  ours/torch x${(ms / t).toFixed(2)}  (${(t / ms).toFixed(2)} of torch's speed)` : '';
    const rate = flops ? `${(flops / ms / 1e9).toFixed(1).padStart(7)} TFLOP/s` : `${(bytes / ms / 1e6).toFixed(0).padStart(7)} GB/s   `;
    console.log(`${kind.padEnd(10)} ${key.padEnd(22)} ${ms.toFixed(3).padStart(9)} ms  ${rate}${ratio}`);
    rows.push({ kind, key, ms, tflops: flops ? flops / ms / 1e9 : undefined, gbps: bytes ? bytes / ms / 1e6 : undefined, torchMs: t });
  };
  for (const [M, K, N] of wanted('gemm') ? shapes.gemm : []) {
    const w = rand([N, K], 'F16', 1 / Math.sqrt(K));
    const ms = await timeGraph((g, v) => g.linear(v.x, w), { x: rand([M, K]) });
    report('gemm', `${M}x${K}x${N}`, ms, 2 * M * K * N);
  }
  for (const [H, W, Ci, Co] of wanted('conv') ? shapes.conv : []) {
    const w = rand([Co, Ci, 3, 3], 'F16', 1 / Math.sqrt(9 * Ci));
    const ms = await timeGraph((g, v) => g.conv2d(v.x, w, undefined, { padding: 1 }), { x: rand([1, H, W, Ci]) });
    report('conv3x3', `${H}x${W}x${Ci}->${Co}`, ms, 2 * H * W * Ci * Co * 9);
  }
  for (const [B, Nq, Nk, H, D] of wanted('attention') ? shapes.attention : []) {
    const ms = await timeGraph((g, v) => g.attention(v.q, v.k, v.v, H, 1 / Math.sqrt(D), false), {
      q: rand([B, Nq, H * D]),
      k: rand([B, Nk, H * D]),
      v: rand([B, Nk, H * D]),
    });
    report('attention', `${B}x${Nq}x${Nk}x${H}x${D}`, ms, 4 * B * H * Nq * Nk * D);
  }
  for (const [H, W, C, G] of wanted('group_norm') ? shapes.group_norm : []) {
    const gamma = rand([C]), beta = rand([C]);
    const ms = await timeGraph((g, v) => g.groupNorm(v.x, gamma, beta, G, 1e-5, Act.Silu), { x: rand([1, H, W, C]) });
    // read + write of x as the device stores it (16-bit unless ONESTEP_CUDA_ACTIVATIONS=f32)
    const bytesPer = device === 'cuda' && process.env.ONESTEP_CUDA_ACTIVATIONS !== 'f32' ? 2 : 4;
    report('group_norm', `${H}x${W}x${C}/${G}`, ms, 0, 2 * H * W * C * bytesPer);
  }
  if (opt('json')) fs.writeFileSync(opt('json'), JSON.stringify(rows, null, 1));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
