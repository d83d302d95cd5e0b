#!/usr/bin/env node
// LoRA fusion time on a real-size model: a random kohya LoRA in the LCM-LoRA layout (rank 64 on
// every UNet linear and 1x1 / 3x3 conv, plus the text encoder) is written for the random-weight
// model bench.js uses, then fused, re-fused at another scale, and unfused; each is timed.
// On cuda the fusion is the GPU's (docs/LORA.md, "On the GPU"): "fuse" is the first fusion plus
// building the UNet graph (uploads and fusions on the device), "re-fuse" a scale change that
// re-fuses the copies that graph holds, in place, and a UNet step checks the graph still runs.
//   node scripts/bench-lora.js [--model sd_turbo] [--rank 64] [--runs 3] [--device cpu|cuda]
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const { addon } = require(path.join(dist, 'native.js'));
const { saveSafetensors, openSafetensors } = require(path.join(dist, 'safetensors'));
const { UNet2DConditionModel } = require(path.join(dist, 'models', 'unet', 'unet.js'));
const { CLIPTextModel } = require(path.join(dist, 'models', 'clip', 'text_encoder.js'));
const { LoraSet } = require(path.join(dist, 'lora'));
const { makeRandomModel } = require('./make-random-model.js');
const { scriptOptions } = require('./script-options.js');

const USAGE = `usage: npm run bench:lora -- [options]

  --model NAME   sd_turbo (default) or another random-weight model of scripts/bench.js
  --rank N       LoRA rank (default 64)
  --runs N       repetitions (default 3; medians reported)
  --device DEV   cpu (default) or cuda (fusion on the GPU)
  -h, --help     this text`;
const { parsed, usage, intOpt } = scriptOptions('bench-lora', USAGE, {
  model: { type: 'string' },
  rank: { type: 'string' },
  runs: { type: 'string' },
  device: { type: 'string' },
});
const modelName = parsed.model ?? 'sd_turbo';
const rank = intOpt('rank', 64, 1);
const runs = intOpt('runs', 3, 1);
const device = parsed.device ?? 'cpu';
if (!['cpu', 'cuda'].includes(device)) usage(`--device must be cpu or cuda, got '${device}'`);

const dir = path.join(root, '.cache', 'random-models', modelName);
if (!fs.existsSync(path.join(dir, 'RANDOM_WEIGHTS.txt'))) {
  console.log(`bench-lora: writing random-weight ${modelName} to ${path.relative(root, dir)} (once)`);
  makeRandomModel({ config: modelName, out: dir, log: (l) => console.log(l) });
}

/** kohya tensors for every LoRA-able weight of one component file. */
function* loraTensors(file, prefix) {
  const f = openSafetensors(file);
  for (const key of f.names()) {
    const info = f.info(key);
    if (!key.endsWith('.weight') || (info.shape.length !== 2 && info.shape.length !== 4)) continue;
    if (/embedding|conv_in\.|conv_out\./.test(key)) continue;
    const [N] = info.shape;
    const K = info.shape.slice(1).reduce((a, b) => a * b, 1);
    const r = Math.min(rank, N, K);
    const base = `${prefix}${key.slice(0, -'.weight'.length).replace(/\./g, '_')}`;
    const downShape = info.shape.length === 4 ? [r, ...info.shape.slice(1)] : [r, K];
    const upShape = info.shape.length === 4 ? [N, r, 1, 1] : [N, r];
    const rand = (n, s) => {
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = (Math.random() * 2 - 1) * s;
      return v;
    };
    yield [`${base}.lora_down.weight`, { dtype: 'F16', shape: downShape, data: rand(r * K, 1 / Math.sqrt(K)) }];
    yield [`${base}.lora_up.weight`, { dtype: 'F16', shape: upShape, data: rand(N * r, 0.01) }];
    yield [`${base}.alpha`, { dtype: 'F16', shape: [], data: new Float32Array([r / 2]) }];
  }
  f.close();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-bench-lora-'));
  const loraFile = path.join(tmp, 'lora.safetensors');
  const tensors = [
    ...loraTensors(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), 'lora_unet_'),
    ...loraTensors(path.join(dir, 'text_encoder', 'model.safetensors'), 'lora_te_'),
  ];
  await saveSafetensors(loraFile, Object.fromEntries(tensors));
  const mib = (fs.statSync(loraFile).size / 2 ** 20).toFixed(0);
  const unet = UNet2DConditionModel.fromPretrained(path.join(dir, 'unet'), { device });
  const te = CLIPTextModel.fromPretrained(path.join(dir, 'text_encoder'), { device });
  // on cuda: the UNet graph at 64x64 latents (its uploads are where the GPU fuses)
  const cfg = unet.config;
  const shape = { batch: 1, height: 64, width: 64, contextLength: 77 };
  const unetGraph = async () => {
    if (device !== 'cuda') return 0;
    const t0 = process.hrtime.bigint();
    await unet.graph(shape.batch, shape.height, shape.width, shape.contextLength).ready();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const set = new LoraSet({ unet: unet.weights, text_encoder: te.weights }, unet.config.layersPerBlock[0]);
  const time = (fn) => {
    const t0 = process.hrtime.bigint();
    const r = fn();
    return [Number(process.hrtime.bigint() - t0) / 1e6, r];
  };
  const [addMs, [rep]] = time(() => set.add([{ path: loraFile, name: 'a' }], { strict: true }));
  const fuse = [];
  const refuse = [];
  const unfuse = [];
  let report;
  const rebuilt = [];
  for (let i = 0; i < runs; i++) {
    set.setScales({ a: 1 });
    const [ms, r] = time(() => set.apply());
    for (const c of r.changed) (c === 'unet' ? unet : te).resetGraphs();
    fuse.push(ms + (await unetGraph()));
    report = r.report;
    set.setScales({ a: 0.5 });
    const [rms, rr] = time(() => set.apply());
    refuse.push(rms);
    rebuilt.push(...rr.changed);
    set.setScales({ a: 0 });
    const [ums, ur] = time(() => set.apply());
    for (const c of ur.changed) (c === 'unet' ? unet : te).resetGraphs();
    unfuse.push(ums);
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)].toFixed(0);
  console.log(`model ${modelName}, LoRA rank ${rank}: ${rep.matched} modules (unet ${rep.byComponent.unet}, text_encoder ${rep.byComponent.text_encoder}), ${mib} MiB F16`);
  console.log(`threads ${addon().cpuInfo().threads}, cpu ${os.cpus()[0].model}`);
  if (device === 'cuda') console.log(`device ${require(path.join(dist, 'info.js')).info().backends.cuda.devices[0]?.name ?? 'cuda'}; fused on ${JSON.stringify(report.fusedOn)}; graphs rebuilt by a scale change: ${JSON.stringify([...new Set(rebuilt)])}`);
  console.log(`read ${addMs.toFixed(0)} ms; fuse ${med(fuse)} ms${device === 'cuda' ? ' (with the UNet graph build)' : ''}; re-fuse at another scale ${med(refuse)} ms; unfuse ${med(unfuse)} ms (median of ${runs}); fused weights ${report.fused.unet + report.fused.text_encoder}`);
  set.dispose();
  unet.dispose();
  te.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
