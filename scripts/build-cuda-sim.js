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
  const dirs = ['kernels', 'kernels/sim', 'kernels/sim/include', 'kernels/vendor'].map((d) => path.join(root, d));
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

// The vendor-library stand-ins (kernels/sim/*_sim.cc), each a shared library in its own folder
// under the real library's file name, found by the CUDA library's search when its variable names
// it (e.g. ONESTEP_CUBLASLT). Variants for the loader's tests: another major version, a library
// missing a function.
const so = (name) => (process.platform === 'darwin' ? `${name}.dylib` : `${name}.so`);
const standInSpecs = [
  { key: 'cublasLt', dir: 'cublaslt', source: 'kernels/sim/cublaslt_sim.cc', file: 'libcublasLt.so.13', defines: [] },
  { key: 'cublasLtOtherVersion', dir: 'cublaslt-v12', source: 'kernels/sim/cublaslt_sim.cc', file: 'libcublasLt.so.13', defines: ['-DCUSIM_LT_VERSION=120800'] },
  { key: 'cublasLtBroken', dir: 'cublaslt-broken', source: 'kernels/sim/cublaslt_sim.cc', file: 'libcublasLt.so.13', defines: ['-DCUSIM_LT_BROKEN'] },
  { key: 'cudnn', dir: 'cudnn', source: 'kernels/sim/cudnn_sim.cc', file: 'libcudnn.so.9', defines: [] },
  { key: 'cudnnOtherCuda', dir: 'cudnn-cu12', source: 'kernels/sim/cudnn_sim.cc', file: 'libcudnn.so.9', defines: ['-DCUSIM_DNN_CUDART=12080'] },
  { key: 'cudnnOtherVersion', dir: 'cudnn-v10', source: 'kernels/sim/cudnn_sim.cc', file: 'libcudnn.so.9', defines: ['-DCUSIM_DNN_VERSION=100000'] },
  { key: 'cudnnBroken', dir: 'cudnn-broken', source: 'kernels/sim/cudnn_sim.cc', file: 'libcudnn.so.9', defines: ['-DCUSIM_DNN_BROKEN'] },
];
const standIns = Object.fromEntries(standInSpecs.map((s) => [s.key, path.join(outDir, s.dir, s.file)]));
const cusimLibrary = path.join(outDir, so('libcusim'));

async function runAll(jobs) {
  const parallel = Math.max(1, Math.min(os.cpus().length, 4));
  let next = 0;
  const workers = Array.from({ length: parallel }, async () => {
    while (next < jobs.length) await jobs[next++]();
  });
  await Promise.all(workers);
}

// Builds cusim as a shared library (the stand-in "driver" every simulated library links), the
// CUDA library on it, and the vendor stand-ins. Returns the CUDA library's path.
async function buildCudaSim({ quiet = true } = {}) {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'native', 'sources.json'), 'utf8'));
  const cxx = process.env.CXX || 'g++';
  const newestHeader = Math.max(...headers().map(mtime));
  fs.mkdirSync(outDir, { recursive: true });
  const base = ['-std=c++17', '-O2', '-g', '-fPIC', '-DONESTEP_CUDA_SIM', '-Wall', '-Wno-unused-function'];
  // fp16 conversions in hardware where the CPU has them (libgcc's software ones dominate otherwise)
  if (hasCpuFlag('f16c')) base.push('-mf16c');
  const hidden = [...base, '-fvisibility=hidden'];
  const includes = ['-I', path.join(root, 'kernels', 'sim', 'include'), '-I', path.join(root, 'kernels')];
  const jobs = [];
  const compile = (src, obj, flags) => {
    const file = path.join(root, src);
    if (mtime(obj) > Math.max(mtime(file), newestHeader)) return obj;
    const lang = src.endsWith('.cu') ? ['-x', 'c++'] : [];
    jobs.push(() => run(cxx, [...flags, ...includes, ...lang, '-c', file, '-o', obj]));
    return obj;
  };
  const objOf = (src, suffix = '') => path.join(outDir, path.basename(src) + suffix + '.o');
  // cusim's symbols are the simulated runtime's interface: visible
  const cusimObj = compile('kernels/sim/cusim.cc', objOf('kernels/sim/cusim.cc'), base);
  const cudaObjs = manifest.cuda.map((src) => compile(src, objOf(src), hidden));
  const standInObjs = standInSpecs.map((s) => compile(s.source, objOf(s.source, '-' + s.dir), [...hidden, ...s.defines]));
  await runAll(jobs);
  const links = [];
  const link = (out, objs, extra) => {
    if (jobs.length === 0 && mtime(out) >= Math.max(...objs.map(mtime), mtime(cusimLibrary))) return;
    fs.mkdirSync(path.dirname(out), { recursive: true });
    links.push(() => run(cxx, ['-shared', '-o', out, ...objs, ...extra, '-lpthread']));
  };
  if (jobs.length || mtime(cusimLibrary) < mtime(cusimObj)) await run(cxx, ['-shared', '-o', cusimLibrary, cusimObj, '-Wl,-soname,' + so('libcusim'), '-lpthread']);
  const onCusim = (origin) => ['-L', outDir, '-lcusim', `-Wl,-rpath,${origin}`];
  link(library, cudaObjs, onCusim('$ORIGIN'));
  standInSpecs.forEach((s, i) => link(standIns[s.key], [standInObjs[i]], onCusim('$ORIGIN/..')));
  await runAll(links);
  if (!quiet && (jobs.length || links.length)) console.error(`built ${library} (${jobs.length} objects recompiled)`);
  return library;
}

module.exports = { buildCudaSim, library, standIns, cusimLibrary };

if (require.main === module) {
  buildCudaSim({ quiet: false }).then(
    (lib) => console.log(lib),
    (e) => {
      console.error(e.message);
      process.exit(1);
    },
  );
}
