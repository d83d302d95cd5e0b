#!/usr/bin/env node
// Produces prebuilds/<platform>-<arch>/: the addon (named as node-gyp-build expects) and, where
// nvcc exists, the CUDA backend library for every default architecture. prebuildify cannot drive
// cmake-js, so this does the same job for our two artifacts.
'use strict';
const fs = require('fs');
const path = require('path');
const { buildCmake } = require('./build-native.js');

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const built = path.join(root, 'build', 'Release');

if (!process.env.ONESTEP_CUDA_ARCHS) process.env.ONESTEP_CUDA_ARCHS = '75-real;80-real;86-real;89-real;90';
buildCmake();
fs.mkdirSync(outDir, { recursive: true });
const copies = [['onestep.node', 'onestep.napi.node']];
for (const lib of ['libonestep_cuda.so', 'libonestep_cuda.dylib', 'onestep_cuda.dll']) copies.push([lib, lib]);
for (const [from, to] of copies) {
  const src = path.join(built, from);
  if (!fs.existsSync(src)) continue;
  fs.copyFileSync(src, path.join(outDir, to));
  console.log(`[onestep] prebuilds/${path.basename(outDir)}/${to}`);
}
