#!/usr/bin/env bash
# Packs what a GPU session needs into .gpu/ (kept out of git through .git/info/exclude), so that one
# device run with carry ['.gpu', 'dist'] has everything: the node binary (xz), the built addon and
# CUDA library, the runtime modules, and the fixtures the GPU checks read (the device machine
# reaches no network and has no Node.js). About 50 MiB; the device tool carries at most 64.
#   scripts/gpu/pack.sh            then: device run `bash scripts/gpu/session.sh`, carry ['.gpu', 'dist']
set -euo pipefail
cd "$(dirname "$0")/../.."
exclude="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")"
grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"
fixtures="${ONESTEP_FIXTURES:-../shared/fixtures}"
npx tsc -p tsconfig.json
ONESTEP_CUDA_ARCHS=90 node scripts/build-native.js
rm -rf .gpu
mkdir -p .gpu/build .gpu/fixtures .gpu/node_modules
xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
cp build/Release/onestep.node build/Release/libonestep_cuda.so .gpu/build/
for m in node-gyp-build node-addon-api pngjs ws; do cp -r "node_modules/$m" .gpu/node_modules/; done
for d in golden models lora tokenizer configs; do cp -r "$fixtures/$d" .gpu/fixtures/; done
cp "$fixtures"/README*.md .gpu/fixtures/
du -sh .gpu dist
