#!/usr/bin/env node
// npm run bench: per-stage latency of real-size random-weight models on the CPU.
//   node scripts/bench.js [--model sd_turbo] [--size 512] [--runs 3] [--threads N] [--gemm] [--skip vae]
// Stages: text encoder (77 tokens), one UNet step, VAE decoder, TAESD decoder. Each stage runs
// once cold (graph build, arena allocation, first touch of the mapped weights), then --runs
// warm runs (median reported). GFLOP/s counts multiply-adds x 2 of GEMM-like ops (the cost
// table's method). The random models are written once to .cache/random-models/ (about 2.5 GB for SD-Turbo).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
if (opt('threads')) process.env.ONESTEP_NUM_THREADS = opt('threads');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const { addon } = require(path.join(dist, 'native.js'));
const { CLIPTokenizer } = require(path.join(dist, 'tokenizer'));
const { CLIPTextModel } = require(path.join(dist, 'models', 'clip', 'text_encoder.js'));
const { UNet2DConditionModel } = require(path.join(dist, 'models', 'unet', 'unet.js'));
const { AutoencoderKL } = require(path.join(dist, 'models', 'vae', 'autoencoder_kl.js'));
const { AutoencoderTiny } = require(path.join(dist, 'models', 'vae', 'autoencoder_tiny.js'));
const { makeRandomModel } = require('./make-random-model.js');

const modelName = opt('model', 'sd_turbo');
const size = Number(opt('size', 512));
const runs = Number(opt('runs', 3));
const skip = new Set((opt('skip', '') || '').split(',').filter(Boolean));
const cacheDir = path.join(root, '.cache', 'random-models');

function ensureModel(config) {
  const dir = path.join(cacheDir, config);
  if (!fs.existsSync(path.join(dir, 'RANDOM_WEIGHTS.txt'))) {
    console.log(`bench: writing random-weight ${config} to ${path.relative(root, dir)} (once)`);
    makeRandomModel({ config, out: dir, log: (l) => console.log(l) });
  }
  return dir;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function stage(name, graph, inputs, rows) {
  const t0 = process.hrtime.bigint();
  const first = await graph.run(inputs);
  const cold = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const [k, t] of Object.entries(first)) if (k !== 'profile') t.dispose();
  const times = [];
  let profile;
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    const out = await graph.run(inputs, { profile: i === runs - 1 });
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    if (out.profile) profile = out.profile;
    for (const [k, t] of Object.entries(out)) if (k !== 'profile') t.dispose();
  }
  const ms = median(times);
  const flops = 2 * graph.macs.total;
  // the slowest op kinds, from the profiled run
  const byOp = new Map();
  for (const p of profile || []) byOp.set(p.op, (byOp.get(p.op) || 0) + p.seconds * 1e3);
  const top = [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([op, t]) => `${op} ${t.toFixed(0)}`).join(', ');
  rows.push({ name, ms, cold, gflops: flops / (ms / 1e3) / 1e9, gflop: flops / 1e9, top });
  const rss = (process.memoryUsage().rss / 2 ** 30).toFixed(2);
  console.log(`${name.padEnd(26)} ${ms.toFixed(0).padStart(8)} ms  (cold ${cold.toFixed(0)} ms)  ${(flops / 1e9).toFixed(1).padStart(7)} GFLOP  ${(flops / (ms / 1e3) / 1e9).toFixed(1).padStart(6)} GFLOP/s  rss ${rss} GiB  [${top}]`);
}

async function main() {
  const a = addon();
  const cpu = a.cpuInfo();
  console.log(`bench: ${os.cpus()[0].model}, ${cpu.threads} threads, simd ${cpu.simd.join(' ')}, gemm kernel ${a.gemmInfo().kernel}, node ${process.versions.node}`);
  const dir = ensureModel(modelName);
  const taesdDir = ensureModel(modelName.startsWith('sdxl') ? 'taesdxl' : 'taesd');
  const rows = [];
  const latent = size / 8;

  const tok = await CLIPTokenizer.fromPretrained(path.join(dir, 'tokenizer'));
  const te = CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'));
  const ids = tok.encode('a cinematic photo of a fox in the snow, golden hour');
  if (!skip.has('text')) {
    await stage('text encoder (77 tokens)', te.graph(1, 77, ['last_hidden_state']), { input_ids: BigInt64Array.from(ids.map(BigInt)) }, rows);
  }
  te.dispose();

  if (!skip.has('unet')) {
    const unet = UNet2DConditionModel.fromPretrained(path.join(dir, 'unet'));
    const c = unet.config;
    const rnd = (n) => addon().randomTensor('F32', [n], 1, 0, 1).toFloat32();
    const inputs = {
      sample: rnd(c.inChannels * latent * latent),
      timestep: Float32Array.from([999]),
      encoder_hidden_states: rnd(77 * c.crossAttentionDim),
    };
    if (c.timeCondProjDim) inputs.timestep_cond = rnd(c.timeCondProjDim);
    if (c.textTime) {
      inputs.text_embeds = rnd(c.textTime.projectionInputDim - 6 * c.textTime.timeEmbedDim);
      inputs.time_ids = Float32Array.from([size, size, 0, 0, size, size]);
    }
    await stage(`UNet step (${latent}x${latent})`, unet.graph(1, latent, latent, 77), inputs, rows);
    unet.dispose();
  }

  const latents = addon().randomTensor('F32', [4 * latent * latent], 2, 0, 1).toFloat32();
  if (!skip.has('vae')) {
    const vae = AutoencoderKL.fromPretrained(path.join(dir, 'vae'));
    await stage(`VAE decoder (${size}x${size})`, vae.decoderGraphFor(1, latent, latent), { latents }, rows);
    vae.dispose();
  }
  if (!skip.has('taesd')) {
    const taesd = AutoencoderTiny.fromPretrained(taesdDir);
    await stage(`TAESD decoder (${size}x${size})`, taesd.decoderGraphFor(1, latent, latent), { latents }, rows);
    taesd.dispose();
  }

  const total = (names) => rows.filter((r) => names.some((n) => r.name.startsWith(n))).reduce((s, r) => s + r.ms, 0);
  console.log(`${modelName} 1 step ${size}x${size}: ${(total(['text', 'UNet', 'VAE']) / 1e3).toFixed(2)} s with the VAE, ${(total(['text', 'UNet', 'TAESD']) / 1e3).toFixed(2)} s with TAESD (sum of warm stages)`);
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024 / 1024).toFixed(2)} GiB`);

  if (args.includes('--gemm')) spawnSync(process.execPath, [path.join(__dirname, 'bench-gemm.js')], { stdio: 'inherit' });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
