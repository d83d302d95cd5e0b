#!/usr/bin/env node
// npm run bench:peers: onestep against onnxruntime-node on the CPU, stage by stage, on the same
// random-weight model (a script, not a test).
//
//   node scripts/bench-peers.js [--model sd_turbo] [--size 512] [--rounds 5] [--threads N]
//        [--stages text,unet,vae,taesd] [--precision fp32|bf16] [--diffusers-src DIR] [--python PATH] [--json FILE]
//
// What it does, once per machine (all in the git-ignored .cache/):
//   - the bench's random-weight model (.cache/random-models/, as npm run bench);
//   - ONNX files of the reference networks (.cache/peers/onnx/<model>-<size>/<stage>/) by
//     scripts/peers/export_onnx.py: diffusers' own modules (a diffusers source tree, --diffusers-src,
//     default .cache/peers/src) in float32 under the system PyTorch (Debian: python3-torch), with
//     seeded inputs and PyTorch's outputs beside them;
//   - onnxruntime-node in .cache/peers/ort (npm install --onnxruntime-node-install=skip: its bundled
//     CPU binaries, no GPU download).
// Then per stage: both engines warm, then --rounds rounds of A B (the order swapped every round,
// an idle pause before each run),
// each run timed with its CPU time (process user + system: CPU / wall says how busy the cores were);
// medians, the median of per-round ratios, and each engine's output against PyTorch's (rel L2).
// Both engines get the same thread count (onestep's pool, ORT's intra-op pool; inter-op 1).
// At fp32, how far each stage is from what the CPU allows: onestep's float32 FMA peak on those
// threads (gemmPeak: register-only FMAs), and from one profiled onestep run the GFLOP/s of the ops
// that count flops (GEMMs, convolutions, attention) and the time of the others; the stage's
// ceiling is its flops at the peak plus those others (no engine's FMA kernels run above the peak).
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { scriptOptions } = require('./script-options.js');

const USAGE = `usage: npm run bench:peers -- [options]
  --model NAME        sd_turbo (default), sd21_base, sd15, lcm_dreamshaper_v7 (random weights, as npm run bench)
  --size N            image size (default 512; a multiple of 8)
  --rounds N          timed rounds per stage, each engine once per round (default 5)
  --threads N         threads for both engines (default: all hardware threads)
  --stages LIST       text,unet,vae,taesd (default: all)
  --precision P       onestep's: fp32 (default) or bf16 (CPUs with AVX512_BF16 or AMX-BF16); ORT runs
                      the float32 ONNX files either way
  --diffusers-src DIR a diffusers source tree's src/ (default .cache/peers/src; e.g. from
                      git clone --branch v0.27.2 https://github.com/huggingface/diffusers)
  --python PATH       a python with torch (default: python3 on PATH that imports torch, else /usr/bin/python3)
  --ort-version V     onnxruntime-node version (default 1.31.1)
  --pause-ms N        idle pause before each timed run (default 300): threads still spinning after
                      the other engine's run (onnxruntime's workers spin by default) stop first
  --json FILE         also write the results as JSON`;

const { parsed, usage, intOpt } = scriptOptions('bench:peers', USAGE, {
  model: { type: 'string' },
  size: { type: 'string' },
  rounds: { type: 'string' },
  threads: { type: 'string' },
  stages: { type: 'string' },
  'diffusers-src': { type: 'string' },
  python: { type: 'string' },
  'ort-version': { type: 'string' },
  'pause-ms': { type: 'string' },
  json: { type: 'string' },
  precision: { type: 'string' },
});
const MODELS = ['sd_turbo', 'sd21_base', 'sd15', 'lcm_dreamshaper_v7'];
const STAGES = ['text', 'unet', 'vae', 'taesd'];
const modelName = parsed.model ?? 'sd_turbo';
if (!MODELS.includes(modelName)) usage(`--model must be one of ${MODELS.join(', ')}, got '${modelName}'`);
const size = intOpt('size', 512, 8, 8);
const rounds = intOpt('rounds', 5, 1);
const pauseMs = intOpt('pause-ms', 300, 0);
const stages = (parsed.stages ?? STAGES.join(',')).split(',').filter(Boolean);
for (const s of stages) if (!STAGES.includes(s)) usage(`--stages takes ${STAGES.join(', ')}, got '${s}'`);
const precision = parsed.precision ?? 'fp32';
if (!['fp32', 'bf16'].includes(precision)) usage(`--precision must be fp32 or bf16, got '${precision}'`);
const threads = intOpt('threads', os.availableParallelism ? os.availableParallelism() : os.cpus().length, 1);
process.env.ONESTEP_NUM_THREADS = String(threads);
const ortVersion = parsed['ort-version'] ?? '1.31.1';
if (!/^\d+\.\d+\.\d+$/.test(ortVersion)) usage(`--ort-version must be x.y.z, got '${ortVersion}'`);

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const cache = path.join(root, '.cache');
const diffusersSrc = path.resolve(parsed['diffusers-src'] ?? path.join(cache, 'peers', 'src'));
const onnxDir = path.join(cache, 'peers', 'onnx', `${modelName}-${size}`);
const ortDir = path.join(cache, 'peers', 'ort');
const log = (l) => console.log(`bench:peers: ${l}`);

const { addon } = require(path.join(dist, 'native.js'));
const { openSafetensors } = require(path.join(dist, 'safetensors'));
const { CLIPTextModel } = require(path.join(dist, 'models', 'clip', 'text_encoder.js'));
const { UNet2DConditionModel } = require(path.join(dist, 'models', 'unet', 'unet.js'));
const { AutoencoderKL } = require(path.join(dist, 'models', 'vae', 'autoencoder_kl.js'));
const { AutoencoderTiny } = require(path.join(dist, 'models', 'vae', 'autoencoder_tiny.js'));
const { ensureRandomModel } = require('./make-random-model.js');

function findPython() {
  const candidates = parsed.python ? [parsed.python] : ['python3', '/usr/bin/python3'];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return { py, torch: r.stdout.trim() };
  }
  throw new Error(`no python with torch (tried ${candidates.join(', ')}): install Debian's python3-torch, or pass --python`);
}

function ensureOnnx(modelDir, taesdDir) {
  const missing = stages.filter((s) => !fs.existsSync(path.join(onnxDir, s, 'meta.json')));
  if (!missing.length) return;
  if (!fs.existsSync(path.join(diffusersSrc, 'diffusers', 'models'))) {
    throw new Error(`${diffusersSrc} is not a diffusers source tree's src/ (no diffusers/models): pass --diffusers-src, e.g. a checkout of https://github.com/huggingface/diffusers at v0.27.2`);
  }
  const { py, torch } = findPython();
  log(`exporting ${missing.join(', ')} to ONNX with ${py} (torch ${torch}); once per model and size`);
  const r = spawnSync(py, [path.join(__dirname, 'peers', 'export_onnx.py'), '--model', modelDir, '--taesd', taesdDir, '--diffusers-src', diffusersSrc,
    '--out', onnxDir, '--stages', missing.join(','), '--size', String(size)], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`the ONNX export failed (exit ${r.status})`);
}

function ensureOrt() {
  const pkg = path.join(ortDir, 'node_modules', 'onnxruntime-node');
  const installed = fs.existsSync(path.join(pkg, 'package.json')) ? JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version : undefined;
  if (installed !== ortVersion) {
    log(`installing onnxruntime-node@${ortVersion} into ${path.relative(root, ortDir)} (its CPU binaries; --onnxruntime-node-install=skip)`);
    fs.mkdirSync(ortDir, { recursive: true });
    if (!fs.existsSync(path.join(ortDir, 'package.json'))) fs.writeFileSync(path.join(ortDir, 'package.json'), '{"private": true}\n');
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['install', `onnxruntime-node@${ortVersion}`, '--onnxruntime-node-install=skip', '--no-audit', '--no-fund'], { cwd: ortDir, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`npm install onnxruntime-node failed (exit ${r.status})`);
  }
  return require(pkg);
}

// the export's inputs and PyTorch's output, as Float32Array / BigInt64Array by name
function readIo(stage) {
  const meta = JSON.parse(fs.readFileSync(path.join(onnxDir, stage, 'meta.json'), 'utf8'));
  const f = openSafetensors(path.join(onnxDir, stage, 'io.safetensors'));
  const get = (name, dtype) => {
    const t = f.tensor(name);
    const v = dtype === 'I64' ? new BigInt64Array(Uint8Array.from(t.bytes()).buffer) : t.toFloat32();
    t.dispose();
    return v;
  };
  const io = { meta, inputs: {}, want: get(meta.output.name, 'F32') };
  for (const i of meta.inputs) io.inputs[i.name] = get(i.name, i.dtype);
  f.close();
  return io;
}

function relL2(a, b) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / (den || 1));
}

const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

async function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const out = await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e6;
  const c = process.cpuUsage(c0);
  return { out, wall, cpu: (c.user + c.system) / 1e3 };
}

async function main() {
  const a = addon();
  log(`${os.cpus()[0].model}, ${threads} threads for each engine, simd ${a.cpuInfo().simd.join(' ')}, onestep kernels ${a.gemmInfo().kernel} / ${a.gemmInfo().vectorMath} / ${a.gemmInfo().winograd}, node ${process.versions.node}`);
  const models = path.join(cache, 'random-models');
  const modelDir = ensureRandomModel(modelName, models, log);
  const taesdDir = ensureRandomModel('taesd', models, log);
  ensureOnnx(modelDir, taesdDir);
  const ort = ensureOrt();
  log(`onnxruntime-node ${ort.env.versions?.node ?? ortVersion}, graph optimisation 'all', intra-op threads ${threads}, inter-op 1; onestep at precision ${precision}`);
  // the float32 ceiling (not for bf16, whose products run other instructions)
  const peak = precision === 'fp32' && a.gemmInfo().kernel !== 'generic' ? a.gemmPeak(1) : null;
  if (peak) log(`FMA peak ${peak.toFixed(0)} GFLOP/s (the ${a.gemmInfo().kernel} kernel's vectors, ${threads} threads, register-only FMAs)`);

  const latent = size / 8;
  const results = [];
  for (const stage of stages) {
    const io = readIo(stage);
    let model;
    let graph;
    let output;
    if (stage === 'text') {
      model = CLIPTextModel.fromPretrained(path.join(modelDir, 'text_encoder'), { precision });
      graph = model.graph(1, io.meta.inputs[0].shape[1], ['last_hidden_state']);
      output = 'last_hidden_state';
    } else if (stage === 'unet') {
      model = UNet2DConditionModel.fromPretrained(path.join(modelDir, 'unet'), { precision });
      graph = model.graph(1, latent, latent, io.meta.inputs[2].shape[1]);
      output = 'out';
    } else if (stage === 'vae') {
      model = AutoencoderKL.fromPretrained(path.join(modelDir, 'vae'), { precision });
      graph = model.decoderGraphFor(1, latent, latent);
      output = 'image';
    } else {
      model = AutoencoderTiny.fromPretrained(taesdDir, { precision });
      graph = model.decoderGraphFor(1, latent, latent);
      output = 'image';
    }
    const feedOnestep = {};
    const feedOrt = {};
    for (const i of io.meta.inputs) {
      feedOnestep[i.name] = io.inputs[i.name];
      feedOrt[i.name] = new ort.Tensor(i.dtype === 'I64' ? 'int64' : 'float32', io.inputs[i.name], i.shape);
    }
    const session = await ort.InferenceSession.create(path.join(onnxDir, stage, 'model.onnx'), {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
    const runOnestep = async () => {
      const r = await graph.run(feedOnestep);
      const v = r[output].toFloat32();
      for (const t of Object.values(r)) t.dispose();
      return v;
    };
    const runOrt = async () => (await session.run(feedOrt))[io.meta.output.name].data;
    // warm: compile / first touch on both, and the outputs for the agreement check
    const gotOnestep = (await timed(runOnestep)).out;
    const gotOrt = (await timed(runOrt)).out;
    const rows = { onestep: [], ort: [] };
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 ? ['ort', 'onestep'] : ['onestep', 'ort'];
      for (const e of order) {
        // a pause first: either engine's threads may still spin after its run (onnxruntime's
        // workers spin by default) and would take the cores from the other engine's run
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
        rows[e].push(await timed(e === 'onestep' ? runOnestep : runOrt));
      }
    }
    // profiled runs (each node timed alone; the fastest of 3): the direct products' rate (GEMMs,
    // convolutions as GEMMs, attention: nominal flops at this peak at best), and the time of the
    // other ops, Winograd convolutions among them (they do fewer multiplications than they count)
    let ceiling = null;
    if (peak) {
      for (let i = 0; i < 3; i++) {
        const prof = await graph.run(feedOnestep, { profile: true });
        for (const [k, t] of Object.entries(prof)) if (k !== 'profile') t.dispose();
        let flops = 0;
        let flopSeconds = 0;
        let otherSeconds = 0;
        for (const p of prof.profile) {
          if (p.flops > 0 && !p.algorithm.startsWith('winograd')) {
            flops += p.flops;
            flopSeconds += p.seconds;
          } else otherSeconds += p.seconds;
        }
        const c = { gflop: flops / 1e9, gflops: flops / flopSeconds / 1e9, otherMs: otherSeconds * 1e3, ms: (flops / (peak * 1e9) + otherSeconds) * 1e3 };
        if (!ceiling || flopSeconds + otherSeconds < ceiling.total) ceiling = { ...c, total: flopSeconds + otherSeconds };
      }
    }
    const ms = (e) => median(rows[e].map((x) => x.wall));
    const busy = (e) => median(rows[e].map((x) => x.cpu / x.wall));
    const ratio = median(rows.onestep.map((x, i) => x.wall / rows.ort[i].wall));
    const res = {
      stage,
      onestepMs: ms('onestep'),
      ortMs: ms('ort'),
      ratio,
      onestepCpuPerWall: busy('onestep'),
      ortCpuPerWall: busy('ort'),
      onestepVsTorch: relL2(gotOnestep, io.want),
      ortVsTorch: relL2(gotOrt, io.want),
      ...(ceiling ? { peakGflops: peak, gflop: ceiling.gflop, gflops: ceiling.gflops, otherMs: ceiling.otherMs, ceilingMs: ceiling.ms } : {}),
    };
    results.push(res);
    console.log(`${stage.padEnd(6)} onestep ${res.onestepMs.toFixed(0).padStart(6)} ms  ort ${res.ortMs.toFixed(0).padStart(6)} ms  onestep/ort ${ratio.toFixed(2)}${ratio > 1 ? ' (slower)' : ''}` +
      `  cpu/wall ${res.onestepCpuPerWall.toFixed(2)} / ${res.ortCpuPerWall.toFixed(2)}  rel L2 vs torch ${res.onestepVsTorch.toExponential(1)} / ${res.ortVsTorch.toExponential(1)}`);
    if (ceiling) {
      console.log(`${''.padEnd(6)} onestep's direct products ${ceiling.gflop.toFixed(1)} GFLOP at ${ceiling.gflops.toFixed(0)} GFLOP/s (${((100 * ceiling.gflops) / peak).toFixed(0)} % of the peak), other ops ${ceiling.otherMs.toFixed(0)} ms;` +
        ` at the peak ${ceiling.ms.toFixed(0)} ms (onestep/ort ${(ceiling.ms / res.ortMs).toFixed(2)})`);
    }
    await session.release();
    graph.dispose();
    model.dispose();
  }
  if (parsed.json) fs.writeFileSync(parsed.json, JSON.stringify({ model: modelName, size, rounds, threads, precision, cpu: os.cpus()[0].model, ort: ortVersion, results }, null, 1));
}

main().catch((e) => {
  console.error(`bench:peers: ${e.message}`);
  process.exit(1);
});
