#!/usr/bin/env node
// npm run bench: per-stage latency of real-size random-weight models, on the CPU or the GPU.
//   node scripts/bench.js [--model sd_turbo] [--size 512] [--runs 3] [--threads N] [--gemm] [--skip vae]
//                         [--device cpu|cuda] [--precision fp32|bf16] [--steps N]
// On cuda each stage also reports achieved TFLOP/s, the ratio to its floor in
// ../shared/fixtures/configs/cost_table.md (512x512 rows), and GPU memory in use.
// Stages: text encoder (77 tokens), one UNet step, VAE decoder, TAESD decoder. Each stage runs
// once cold (graph build, arena allocation, first touch of the mapped weights), then --runs
// warm runs (median reported). GFLOP/s counts multiply-adds x 2 of GEMM-like ops (the cost
// table's method). The random models are written once to .cache/random-models/ (about 2.5 GB for SD-Turbo).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const { scriptOptions } = require('./script-options.js');

const USAGE = `usage: npm run bench -- [options]   (or npx onestep bench [options])

  --model NAME     ${'sd_turbo'} (default), sd21_base, sd15, lcm_dreamshaper_v7, sdxl_turbo, sdxl_base:
                   a random-weight model in that real architecture, written once to
                   .cache/random-models/NAME (SD-Turbo about 2.5 GB, SDXL about 7 GB) and reused
  --size N         image size (default 512; a multiple of 8)
  --runs N         warm runs per stage (default 3; the median is reported)
  --steps N        UNet steps counted in the summary (default 1; e.g. 4 for LCM)
  --threads N      CPU threads (ONESTEP_NUM_THREADS)
  --skip LIST      stages to skip: text,unet,controlnet,vae,taesd (controlnet: one UNet step with a
                   random-weight ControlNet made for the model's UNet, written once to
                   .cache/random-models/NAME-controlnet)
  --device DEV     cpu (default) or cuda
  --precision P    fp32 (default) or bf16: the CPU's GEMMs on weights with bf16 operands
                   (CPUs with AVX512_BF16 or AMX-BF16)
  --gemm           also run scripts/bench-gemm.js
  -h, --help       this text (nothing is written)`;

const { parsed, usage, intOpt } = scriptOptions('bench', USAGE, {
  model: { type: 'string' },
  size: { type: 'string' },
  runs: { type: 'string' },
  steps: { type: 'string' },
  threads: { type: 'string' },
  skip: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  gemm: { type: 'boolean' },
});
const MODELS = ['sd_turbo', 'sd21_base', 'sd15', 'lcm_dreamshaper_v7', 'sdxl_turbo', 'sdxl_base'];
const opt = (name, dflt) => parsed[name] ?? dflt;
const args = process.argv.slice(2);
if (parsed.model !== undefined && !MODELS.includes(parsed.model)) usage(`--model must be one of ${MODELS.join(', ')}, got '${parsed.model}'`);
if (parsed.threads !== undefined) process.env.ONESTEP_NUM_THREADS = String(intOpt('threads', 0, 1));

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const { addon } = require(path.join(dist, 'native.js'));
const { CLIPTokenizer } = require(path.join(dist, 'tokenizer'));
const { CLIPTextModel } = require(path.join(dist, 'models', 'clip', 'text_encoder.js'));
const { UNet2DConditionModel } = require(path.join(dist, 'models', 'unet', 'unet.js'));
const { AutoencoderKL } = require(path.join(dist, 'models', 'vae', 'autoencoder_kl.js'));
const { AutoencoderTiny } = require(path.join(dist, 'models', 'vae', 'autoencoder_tiny.js'));
const { ensureRandomModel, makeRandomControlNet } = require('./make-random-model.js');
const { ControlNetModel } = require(path.join(dist, 'models', 'controlnet', 'controlnet.js'));

const modelName = opt('model', 'sd_turbo');
const device = opt('device', 'cpu');
if (!['cpu', 'cuda'].includes(device)) usage(`--device must be cpu or cuda, got '${device}'`);
const precision = opt('precision', 'fp32');
if (!['fp32', 'bf16'].includes(precision)) usage(`--precision must be fp32 or bf16, got '${precision}'`);
const STAGES = ['text', 'unet', 'controlnet', 'vae', 'taesd'];
const size = intOpt('size', 512, 8, 8);
const runs = intOpt('runs', 3, 1);
const steps = intOpt('steps', 1, 1); // UNet steps in the summary (e.g. 4 for LCM)
const skip = new Set((opt('skip', '') || '').split(',').filter(Boolean));
for (const s of skip) if (!STAGES.includes(s)) usage(`--skip takes ${STAGES.join(', ')}, got '${s}'`);
const cacheDir = path.join(root, '.cache', 'random-models');

const ensureModel = (config) => ensureRandomModel(config, cacheDir, (l) => console.log(`bench: ${l.replace(root + path.sep, '')}`));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// the cost table's floor (microseconds) of each stage's component, 512x512 rows
const COMPONENTS = {
  sd_turbo: { text: 'text_openclip_h_23l', unet: 'unet_sd21_sdturbo_512' },
  sd21_base: { text: 'text_openclip_h_23l', unet: 'unet_sd21_sdturbo_512' },
  sd15: { text: 'text_clip_l', unet: 'unet_sd15_512' },
  lcm_dreamshaper_v7: { text: 'text_clip_l', unet: 'unet_lcm_dreamshaper_v7_512' },
  sdxl_turbo: { text: 'text_clip_l', unet: 'unet_sdxl_512' },
  sdxl_base: { text: 'text_clip_l', unet: 'unet_sdxl_512' },
};
function floors() {
  const file = path.join(root, '..', 'shared', 'fixtures', 'configs', 'cost_table.md');
  const out = new Map();
  if (!fs.existsSync(file)) return out;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const m = /^([\d.]+) us$/.exec(cells[11] || '');
    if (m) out.set(cells[1], Number(m[1]));
  }
  return out;
}
const FLOORS = floors();

async function stage(name, graph, inputs, rows, component) {
  const t0 = process.hrtime.bigint();
  const r0 = process.resourceUsage();
  const first = await graph.run(inputs);
  const cold = Number(process.hrtime.bigint() - t0) / 1e6;
  // what the first run spends in the kernel: mostly first touches of fresh memory (weight panels,
  // derived forms, the arena), each a page fault; costly on virtual machines (docs/PERFORMANCE.md)
  const r1 = process.resourceUsage();
  const coldSys = (r1.systemCPUTime - r0.systemCPUTime) / 1e6;
  const coldFaults = r1.minorPageFault + r1.majorPageFault - r0.minorPageFault - r0.majorPageFault;
  const coldNote = `cold ${cold.toFixed(0)} ms, sys ${coldSys.toFixed(1)} s, ${(coldFaults / 1e3).toFixed(0)}K faults`;
  for (const [k, t] of Object.entries(first)) if (k !== 'profile') t.dispose();
  const times = [];
  for (let i = 0; i < runs; i++) {
    const s = process.hrtime.bigint();
    const out = await graph.run(inputs);
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
    for (const t of Object.values(out)) t.dispose();
  }
  // one more run, profiled node by node (not timed: profiling syncs after every node)
  const profiled = await graph.run(inputs, { profile: true });
  const profile = profiled.profile;
  for (const [k, t] of Object.entries(profiled)) if (k !== 'profile') t.dispose();
  const ms = median(times);
  const flops = 2 * graph.macs.total;
  const floorUs = size === 512 && component ? FLOORS.get(component) : undefined;
  // the slowest op kinds, from the profiled run
  const byOp = new Map();
  for (const p of profile || []) {
    const key = p.algorithm && p.op === 'conv2d' ? `${p.op}/${p.algorithm}` : p.op; // the CPU's conv algorithms apart
    byOp.set(key, (byOp.get(key) || 0) + p.seconds * 1e3);
  }
  const top = [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([op, t]) => `${op} ${t.toFixed(device === 'cuda' ? 2 : 0)}`).join(', ');
  rows.push({ name, ms, cold, coldSys, coldFaults, gflops: flops / (ms / 1e3) / 1e9, gflop: flops / 1e9, top, floorMs: floorUs ? floorUs / 1e3 : undefined });
  const rss = (process.memoryUsage().rss / 2 ** 30).toFixed(2);
  if (device === 'cuda') {
    const mem = addon().cudaMemory();
    const floor = floorUs ? `  floor ${(floorUs / 1e3).toFixed(2)} ms (x${(ms / (floorUs / 1e3)).toFixed(1)})` : '';
    console.log(`${name.padEnd(26)} ${ms.toFixed(2).padStart(9)} ms  (${coldNote})  ${(flops / 1e9).toFixed(1).padStart(7)} GFLOP  ${(flops / (ms / 1e3) / 1e12).toFixed(1).padStart(6)} TFLOP/s${floor}  GPU ${((mem.total - mem.free) / 2 ** 30).toFixed(1)} GiB in use  [${top}]`);
  } else {
    console.log(`${name.padEnd(26)} ${ms.toFixed(0).padStart(8)} ms  (${coldNote})  ${(flops / 1e9).toFixed(1).padStart(7)} GFLOP  ${(flops / (ms / 1e3) / 1e9).toFixed(1).padStart(6)} GFLOP/s  rss ${rss} GiB  [${top}]`);
  }
}

async function main() {
  const a = addon();
  const cpu = a.cpuInfo();
  const gi = a.gemmInfo();
  if (precision === 'bf16' && !gi.bf16Kernel) throw new Error('--precision bf16: this CPU has neither AVX512_BF16 nor AMX-BF16');
  console.log(`bench: ${os.cpus()[0].model}, ${cpu.threads} threads, simd ${cpu.simd.join(' ')}, gemm kernel ${precision === 'bf16' ? `${gi.bf16Kernel} (precision bf16)` : gi.kernel}, vector math ${gi.vectorMath}, winograd ${gi.winograd}, node ${process.versions.node}`);
  if (device === 'cuda') {
    const st = a.cudaStatus(require(path.join(dist, 'native.js')).cudaLibraryPath());
    if (!st.usable) throw new Error(`--device cuda: ${st.reason}`);
    console.log(`bench: device cuda: ${st.devices.map((d) => `${d.name} (cc ${d.computeCapability})`).join(', ')}; ${st.buildInfo}`);
  }
  const dev = { device, precision };
  const comp = COMPONENTS[modelName] || {};
  const dir = ensureModel(modelName);
  const taesdDir = ensureModel(modelName.startsWith('sdxl') ? 'taesdxl' : 'taesd');
  const rows = [];
  const latent = size / 8;

  const tok = await CLIPTokenizer.fromPretrained(path.join(dir, 'tokenizer'));
  const te = CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'), dev);
  const ids = tok.encode('a cinematic photo of a fox in the snow, golden hour');
  if (!skip.has('text')) {
    await stage('text encoder (77 tokens)', te.graph(1, 77, ['last_hidden_state']), { input_ids: BigInt64Array.from(ids.map(BigInt)) }, rows, comp.text);
  }
  te.dispose();

  if (!skip.has('unet')) {
    const unet = UNet2DConditionModel.fromPretrained(path.join(dir, 'unet'), dev);
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
    await stage(`UNet step (${latent}x${latent})`, unet.graph(1, latent, latent, 77), inputs, rows, comp.unet);
    if (!skip.has('controlnet')) {
      // one step with a ControlNet (ControlNetModel.from_unet's architecture), as the pipelines build it: one graph
      const cnDir = path.join(cacheDir, `${modelName}-controlnet`);
      if (!fs.existsSync(path.join(cnDir, 'RANDOM_WEIGHTS.txt'))) {
        console.log(`bench: writing a random-weight ControlNet for ${modelName} to ${path.relative(root, cnDir)} (once; reused by later runs)`);
        makeRandomControlNet({ config: modelName, out: cnDir, log: (l) => console.log(l) });
      }
      const cn = ControlNetModel.fromPretrained(cnDir, dev);
      const g = unet.weights.builder();
      const sample = g.input('sample', [1, c.inChannels, latent, latent]);
      const t = g.input('timestep', [1]);
      const ctx = g.input('encoder_hidden_states', [1, 77, c.crossAttentionDim]);
      const cond = g.input('controlnet_cond', [1, 3, size, size]);
      const scales = g.input('scales', [cn.numResiduals]);
      const extras = {};
      if (c.timeCondProjDim) {
        const tc = g.input('timestep_cond', [1, c.timeCondProjDim]);
        extras.timestepCond = tc;
      }
      if (c.textTime) {
        extras.textEmbeds = g.input('text_embeds', [1, c.textTime.projectionInputDim - 6 * c.textTime.timeEmbedDim]);
        extras.timeIds = g.input('time_ids', [1, 6]);
      }
      const cnExtras = { textEmbeds: extras.textEmbeds, timeIds: extras.timeIds };
      g.output('out', unet.describe(g, sample, t, ctx, extras, cn.describe(g, sample, t, ctx, cond, scales, cnExtras)));
      const graph = g.build();
      await stage(`UNet step + ControlNet (${latent}x${latent})`, graph, { ...inputs, controlnet_cond: addon().randomTensor('F32', [3 * size * size], 3, 0.5, 0.5).toFloat32(), scales: new Float32Array(cn.numResiduals).fill(1) }, rows);
      graph.dispose();
      cn.dispose();
    }
    unet.dispose();
  }

  const latents = addon().randomTensor('F32', [4 * latent * latent], 2, 0, 1).toFloat32();
  if (!skip.has('vae')) {
    const vae = AutoencoderKL.fromPretrained(path.join(dir, 'vae'), dev);
    await stage(`VAE decoder (${size}x${size})`, vae.decoderGraphFor(1, latent, latent), { latents }, rows, 'vae_decoder_512');
    vae.dispose();
  }
  if (!skip.has('taesd')) {
    const taesd = AutoencoderTiny.fromPretrained(taesdDir, dev);
    await stage(`TAESD decoder (${size}x${size})`, taesd.decoderGraphFor(1, latent, latent), { latents }, rows, 'taesd_decoder_512');
    taesd.dispose();
  }

  const total = (names) => rows.filter((r) => names.some((n) => r.name.startsWith(n))).reduce((s, r) => s + (r.name.startsWith('UNet step (') ? steps : 1) * r.ms, 0);
  const unit = device === 'cuda' ? [1, 'ms'] : [1e3, 's'];
  const fmt = (ms) => `${(ms / unit[0]).toFixed(2)} ${unit[1]}`;
  console.log(`${modelName} ${steps} step${steps === 1 ? '' : 's'} ${size}x${size} on ${device}${precision === 'bf16' ? ' (bf16)' : ''}: ${fmt(total(['text', 'UNet step (', 'VAE']))} with the VAE, ${fmt(total(['text', 'UNet step (', 'TAESD']))} with TAESD (sum of warm stages)`);
  console.log(`peak RSS ${(process.resourceUsage().maxRSS / 1024 / 1024).toFixed(2)} GiB`);

  if (args.includes('--gemm')) spawnSync(process.execPath, [path.join(__dirname, 'bench-gemm.js')], { stdio: 'inherit' });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
