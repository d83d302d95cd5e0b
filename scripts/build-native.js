#!/usr/bin/env node
// Builds the native artifacts from source.
//   node scripts/build-native.js          cmake-js: the addon, plus the CUDA library where nvcc is found
//   node scripts/build-native.js --gyp    node-gyp: the addon only (what node-gyp-build's fallback does)
// Environment: ONESTEP_CUDA=0 skips CUDA; ONESTEP_CUDA_ARCHS="90" (or "80;90", "native") picks GPU
// architectures (default: "native" when nvidia-smi sees a GPU, else the prebuild list in CMakeLists.txt);
// ONESTEP_BUILD_JOBS sets parallelism.
'use strict';
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const root = path.resolve(__dirname, '..');

function run(cmd, args, opts = {}) {
  console.log(`[onestep] ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    const e = new Error(`${path.basename(cmd)} exited with status ${r.status}`);
    e.status = r.status;
    throw e;
  }
}

function has(cmd, args = ['--version']) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

function jobs() {
  const n = Number(process.env.ONESTEP_BUILD_JOBS);
  if (Number.isInteger(n) && n > 0) return n;
  return Math.max(1, (os.availableParallelism ? os.availableParallelism() : os.cpus().length));
}

// Node headers shipped with the running node (e.g. /usr/include/node), so nothing is downloaded.
function localNodeDir() {
  const dir = path.resolve(process.execPath, '..', '..');
  return fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')) ? dir : null;
}

function cudaArchs() {
  if (process.env.ONESTEP_CUDA_ARCHS) return process.env.ONESTEP_CUDA_ARCHS;
  if (has('nvidia-smi', ['-L'])) return 'native';
  return null;  // CMakeLists.txt default list
}

function buildCmake({ release = true } = {}) {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  const common = ['--log-level', 'warn'];
  if (!release) common.push('--debug');
  const defines = [];
  if (process.env.ONESTEP_CUDA === '0') defines.push('--CDONESTEP_CUDA=OFF');
  const archs = process.env.ONESTEP_CUDA === '0' ? null : cudaArchs();
  if (archs) defines.push(`--CDONESTEP_CUDA_ARCHS=${archs}`);
  // configure every time (so changed options reach the cache), then an incremental build
  run(process.execPath, [cmakeJs, 'configure', ...common, ...defines]);
  run(process.execPath, [cmakeJs, 'build', ...common, ...defines, '--parallel', String(jobs())]);
}

function nodeGypPath() {
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch (_) { /* not a dependency; use npm's own */ }
  const bundled = path.resolve(process.execPath, '..', '..', 'lib', 'node_modules', 'npm', 'node_modules',
    'node-gyp', 'bin', 'node-gyp.js');
  if (fs.existsSync(bundled)) return bundled;
  throw new Error('node-gyp not found (install it or build with cmake: npm run build:native)');
}

function buildGyp() {
  const args = [nodeGypPath(), 'rebuild', '--jobs', String(jobs())];
  const nodedir = process.env.npm_config_nodedir || localNodeDir();
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  run(process.execPath, args);
}

function main(argv) {
  if (argv.includes('--gyp')) return buildGyp();
  if (!has('cmake')) {
    console.log('[onestep] cmake not found: building the CPU addon with node-gyp (no CUDA backend)');
    return buildGyp();
  }
  return buildCmake({ release: !argv.includes('--debug') });
}

module.exports = { buildCmake, buildGyp };

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`[onestep] native build failed: ${e.message}`);
    process.exit(1);
  }
}
