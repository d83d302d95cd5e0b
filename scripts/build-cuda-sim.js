#!/usr/bin/env node
// Builds libonestep_cuda_sim: the CUDA backend's own sources (native/sources.json "cuda") compiled
// by the host C++ compiler against kernels/sim (cusim), so the real kernels run on the CPU.
// Used by test/backend/cuda_sim.test.js; run it by hand to debug a kernel without a GPU:
//   node scripts/build-cuda-sim.js   # prints the library's path
//   ONESTEP_CUDA_EMULATE=kernels ONESTEP_CUDA_LIBRARY=<path> node dist/golden/cli.js <dir> --device cuda
// Objects are rebuilt when their source or any header they may include is newer.
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'build', 'cusim');
const library = path.join(outDir, process.platform === 'darwin' ? 'libonestep_cuda_sim.dylib' : 'libonestep_cuda_sim.so');

function mtime(p) {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

function hasCpuFlag(flag) {
  try {
    return new RegExp(`^flags\\s*:.*\\b${flag}\\b`, 'm').test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function headers() {
  const dirs = [path.join(root, 'kernels'), path.join(root, 'kernels', 'sim'), path.join(root, 'kernels', 'sim', 'include')];
  const files = [path.join(root, 'native', 'graph', 'op_defs.h'), path.join(root, 'native', 'core', 'half.h')];
  for (const d of dirs) for (const f of fs.readdirSync(d)) if (/\.(h|cuh)$/.test(f)) files.push(path.join(d, f));
  return files;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}):\n${err}`))));
  });
}

async function buildCudaSim({ quiet = true } = {}) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'native', 'sources.json'), 'utf8'));
  const sources = [...manifest.cuda, 'kernels/sim/cusim.cc'].map((f) => path.join(root, f));
  const cxx = process.env.CXX || 'g++';
  const newestHeader = Math.max(...headers().map(mtime));
  fs.mkdirSync(outDir, { recursive: true });
  const flags = ['-std=c++17', '-O2', '-g', '-fPIC', '-fvisibility=hidden', '-DONESTEP_CUDA_SIM', '-Wall', '-Wno-unused-function'];
  // fp16 conversions in hardware where the CPU has them (libgcc's software ones dominate otherwise)
  if (hasCpuFlag('f16c')) flags.push('-mf16c');
  const includes = ['-I', path.join(root, 'kernels', 'sim', 'include'), '-I', path.join(root, 'kernels')];
  const jobs = [];
  const objects = [];
  for (const src of sources) {
    const obj = path.join(outDir, path.basename(src) + '.o');
    objects.push(obj);
    if (mtime(obj) > Math.max(mtime(src), newestHeader)) continue;
    const lang = src.endsWith('.cu') ? ['-x', 'c++'] : [];
    jobs.push(() => run(cxx, [...flags, ...includes, ...lang, '-c', src, '-o', obj]));
  }
  const parallel = Math.max(1, Math.min(os.cpus().length, 4));
  let next = 0;
  const workers = Array.from({ length: parallel }, async () => {
    while (next < jobs.length) await jobs[next++]();
  });
  await Promise.all(workers);
  if (jobs.length || mtime(library) < Math.max(...objects.map(mtime))) {
    await run(cxx, ['-shared', '-o', library, ...objects, '-lpthread']);
    if (!quiet) console.error(`built ${library} (${jobs.length} objects recompiled)`);
  }
  return library;
}

module.exports = { buildCudaSim, library };

if (require.main === module) {
  buildCudaSim({ quiet: false }).then(
    (lib) => console.log(lib),
    (e) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
