#!/usr/bin/env node
// npm install hook: use a matching prebuilt binary (prebuilds/<platform>-<arch>/) when one loads,
// otherwise build from source (cmake-js with the CUDA library where nvcc exists, else node-gyp).
// ONESTEP_BUILD_FROM_SOURCE=1 forces a source build.
'use strict';
const path = require('path');

const root = path.resolve(__dirname, '..');

function prebuildLoads() {
  if (process.env.ONESTEP_BUILD_FROM_SOURCE === '1') return false;
  let resolved;
  try {
    resolved = require('node-gyp-build').resolve(root);
  } catch (_) {
    return false;
  }
  if (!resolved.includes(`${path.sep}prebuilds${path.sep}`)) return false;  // only trust shipped prebuilds
  try {
    require(resolved);
    console.log(`[onestep] using prebuilt ${path.relative(root, resolved)}`);
    return true;
  } catch (e) {
    console.log(`[onestep] prebuilt ${path.relative(root, resolved)} does not load (${e.message}); building`);
    return false;
  }
}

if (!prebuildLoads()) {
  const { buildCmake, buildGyp } = require('./build-native.js');
  const { spawnSync } = require('child_process');
  const cmake = spawnSync('cmake', ['--version'], { stdio: 'ignore' });
  try {
    if (!cmake.error && cmake.status === 0) buildCmake();
    else buildGyp();
  } catch (e) {
    console.error(`[onestep] native build failed: ${e.message}`);
    process.exit(1);
  }
}
