#!/usr/bin/env node
// GEMM micro-benchmark at UNet / text-encoder shapes: onestep's CPU GEMM against numpy's matmul
// (OpenBLAS) on the same machine, measured alternately so machine noise hits both alike, and
// against the CPU's float32 FMA peak on the same threads (gemmPeak: register-only FMAs).
//   node scripts/bench-gemm.js [--seconds 0.5] [--rounds 3] [--dtype F32|F16|BF16] [--schedule packed|prepacked|bf16] [--coretype SkylakeX]
// --schedule: B packed per call (packed, default), once as a graph's plan does (prepacked), or as
// bf16 panels with bf16 operands (bf16: precision 'bf16'; CPUs with AVX512_BF16 or AMX-BF16).
// OPENBLAS_CORETYPE (default SkylakeX where the CPU has AVX-512) is set for the numpy child only:
// some OpenBLAS builds detect such CPUs as a generic core and run ~4x slower unless told.
'use strict';
const { spawnSync } = require('child_process');
const path = require('path');
const { addon } = require(path.join(__dirname, '..', 'dist', 'native.js'));

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const seconds = Number(opt('seconds', 0.5));
const rounds = Number(opt('rounds', 3));
const dtype = opt('dtype', 'F32');
const schedule = opt('schedule', 'packed');
if (!['packed', 'prepacked', 'bf16'].includes(schedule)) {
  console.error(`bench-gemm: --schedule must be packed, prepacked or bf16, got '${schedule}'`);
  process.exit(2);
}
const a = addon();
const avx512 = a.cpuInfo().simd.includes('avx512f');
const coretype = opt('coretype', process.env.OPENBLAS_CORETYPE || (avx512 ? 'SkylakeX' : ''));

// [M, N, K, what]
const SHAPES = [
  [4096, 320, 320, 'SD 64x64 attention projection'],
  [4096, 320, 2880, 'SD 64x64 3x3 conv 320->320'],
  [4096, 1280, 320, 'SD 64x64 GEGLU proj'],
  [1024, 640, 5760, 'SD 32x32 3x3 conv 640->640'],
  [1024, 1280, 1280, 'SDXL 32x32 projection'],
  [256, 1280, 11520, 'SD 16x16 3x3 conv 1280->1280'],
  [77, 1024, 4096, 'OpenCLIP-H MLP (text encoder)'],
];

function numpyBench(m, n, k) {
  const py = `
import time, numpy as np
a=np.random.rand(${m},${k}).astype(np.float32); b=np.random.rand(${k},${n}).astype(np.float32)
a@b; t=time.perf_counter(); r=0
while time.perf_counter()-t<${seconds}: a@b; r+=1
print(2*${m}*${n}*${k}*r/(time.perf_counter()-t)/1e9)`;
  const env = { ...process.env };
  if (coretype) env.OPENBLAS_CORETYPE = coretype;
  const r = spawnSync('python3', ['-c', py], { env, encoding: 'utf8' });
  if (r.status !== 0) return NaN;
  return Number(r.stdout.trim());
}

let npAvailable = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
console.log(`gemm: onestep ${schedule === 'bf16' ? a.gemmInfo().bf16Kernel : a.gemmInfo().kernel} kernel (${schedule}), ${a.cpuInfo().threads} threads, B in ${dtype}; numpy OpenBLAS${coretype ? ` (OPENBLAS_CORETYPE=${coretype})` : ''}${npAvailable ? '' : ' unavailable'}`);
const peak = schedule !== 'bf16' && a.gemmInfo().kernel !== 'generic' ? a.gemmPeak(Math.max(seconds, 0.5)) : NaN;
if (Number.isFinite(peak)) console.log(`gemm: FMA peak ${peak.toFixed(1)} GFLOP/s (the ${a.gemmInfo().kernel} kernel's vectors, register-only FMAs)`);
console.log('   M     N      K  onestep GFLOP/s  % of peak  numpy GFLOP/s  ratio  shape');
const ratios = [];
for (const [m, n, k, what] of SHAPES) {
  let ours = 0;
  let np = 0;
  for (let r = 0; r < rounds; r++) {
    ours = Math.max(ours, a.gemmBench(m, n, k, dtype, seconds, schedule));
    if (npAvailable) np = Math.max(np, numpyBench(m, n, k));
  }
  const ratio = npAvailable ? ours / np : NaN;
  if (Number.isFinite(ratio)) ratios.push(ratio);
  const ofPeak = Number.isFinite(peak) ? `${((100 * ours) / peak).toFixed(0)} %` : '-';
  console.log(`${String(m).padStart(5)} ${String(n).padStart(5)} ${String(k).padStart(6)} ${ours.toFixed(1).padStart(16)} ${ofPeak.padStart(10)} ${np.toFixed(1).padStart(14)} ${ratio.toFixed(2).padStart(6)}  ${what}`);
}
if (ratios.length) {
  const geo = Math.exp(ratios.reduce((s, x) => s + Math.log(x), 0) / ratios.length);
  console.log(`gemm: geometric mean ratio onestep / OpenBLAS = ${geo.toFixed(2)}`);
}
