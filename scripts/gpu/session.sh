#!/usr/bin/env bash
# Everything that needs the GPU, in one script for a device run (docs/CUDA.md):
#   here:  scripts/gpu/pack.sh
#   there: bash scripts/gpu/session.sh [check|bench|all|sanitize]   (device run, carry ['.gpu', 'dist'])
# check: rebuild libonestep_cuda for this GPU, info, the op parity suite on cuda, every golden with
#        --device cuda.  bench: our kernels vs torch at UNet shapes, then per-stage latency of
#        random-weight SD-Turbo, SDXL-Turbo (1 step) and SD1.5 LCM (4 steps) at 512x512, full VAE and
#        TAESD, and LoRA fusion on the GPU (scripts/bench-lora.js). sanitize: compute-sanitizer memcheck / racecheck / synccheck over the parity suite.
#        Results and logs go to $OUT.
set -uo pipefail
stage="${1:-all}"
OUT="${OUT:-/tmp/onestep-gpu-out}"
mkdir -p "$OUT"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
say() { echo "== $(date +%H:%M:%S) $*"; }

say "unpacking node, modules, the built addon and the fixtures"
mkdir -p /tmp/onestep-node && xz -dc .gpu/node.xz > /tmp/onestep-node/node && chmod +x /tmp/onestep-node/node
export PATH="/tmp/onestep-node:$PATH"
mkdir -p node_modules build/Release && cp -r .gpu/node_modules/. node_modules/ && cp .gpu/build/* build/Release/
mkdir -p ../shared && ln -sfn "$root/.gpu/fixtures" ../shared/fixtures
export ONESTEP_FIXTURES="$root/.gpu/fixtures"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"

if [ "${ONESTEP_GPU_REBUILD:-1}" = 1 ]; then
  say "building libonestep_cuda for this GPU (sm_90a)"
  nvcc -O3 -std=c++17 -arch=sm_90a --expt-relaxed-constexpr -lineinfo -shared -Xcompiler -fPIC,-fvisibility=hidden \
    -Ikernels $(node -p "require('./native/sources.json').cuda.join(' ')") -ldl -o build/Release/libonestep_cuda.so 2>&1 | tee "$OUT/nvcc.txt" || say "nvcc FAILED (keeping the packed sm_90 build)"
fi
node -e "const o = require('.'); console.log(o.formatInfo(o.info()))" | tee "$OUT/info.txt"

if [ "$stage" = check ] || [ "$stage" = all ]; then
  # both paths: the vendor libraries where the search finds them (info.txt says which), then
  # onestep's own kernels only (ONESTEP_CUBLASLT=none ONESTEP_CUDNN=none)
  for path in libraries own; do
    if [ "$path" = own ]; then export ONESTEP_CUBLASLT=none ONESTEP_CUDNN=none; fi
    say "op parity on cuda ($path)"
    node scripts/gpu/mini-mocha.js test/graph/parity.test.js 2>&1 | tee "$OUT/parity-$path.txt"
    say "goldens with --device cuda ($path)"
    node dist/golden/cli.js .gpu/fixtures/golden --device cuda 2>&1 | tee "$OUT/golden-cuda-$path.txt" | grep -v '^PASS' || true
    tail -1 "$OUT/golden-cuda-$path.txt"
  done
  unset ONESTEP_CUBLASLT ONESTEP_CUDNN
fi

if [ "$stage" = bench ] || [ "$stage" = all ]; then
  say "kernels vs torch"
  python3 scripts/gpu/torch_ops.py > "$OUT/torch.json" 2> "$OUT/torch.txt"; cat "$OUT/torch.txt"
  node scripts/gpu/bench-ops.js --torch "$OUT/torch.json" --json "$OUT/ops.json" 2>&1 | tee "$OUT/ops.txt"
  say "our own kernels only (no cuBLASLt / cuDNN)"
  ONESTEP_CUBLASLT=none ONESTEP_CUDNN=none node scripts/gpu/bench-ops.js --torch "$OUT/torch.json" --json "$OUT/ops-own.json" 2>&1 | tee "$OUT/ops-own.txt"
  say "the first WMMA GEMM (ONESTEP_CUDA_GEMM=wmma) against the pipelined mma one"
  ONESTEP_CUBLASLT=none ONESTEP_CUDNN=none ONESTEP_CUDA_GEMM=wmma node scripts/gpu/bench-ops.js --only gemm,conv --torch "$OUT/torch.json" --json "$OUT/ops-wmma.json" 2>&1 | tee "$OUT/ops-wmma.txt"
  say "attention as cuBLASLt's two GEMMs at every head size, then the WMMA flash kernel (against the mma one)"
  ONESTEP_CUDA_ATTENTION=cublaslt node scripts/gpu/bench-ops.js --only attention --torch "$OUT/torch.json" --json "$OUT/ops-attention-lt.json" 2>&1 | tee "$OUT/ops-attention-lt.txt"
  ONESTEP_CUDA_ATTENTION=wmma node scripts/gpu/bench-ops.js --only attention --torch "$OUT/torch.json" --json "$OUT/ops-attention-wmma.json" 2>&1 | tee "$OUT/ops-attention-wmma.txt"
  say "float32 activations (ONESTEP_CUDA_ACTIVATIONS=f32) against the 16-bit ones"
  ONESTEP_CUDA_ACTIVATIONS=f32 node scripts/gpu/bench-ops.js --torch "$OUT/torch.json" --json "$OUT/ops-f32.json" 2>&1 | tee "$OUT/ops-f32.txt"
  for spec in "sd_turbo 1" "sdxl_turbo 1" "lcm_dreamshaper_v7 4"; do
    set -- $spec
    say "pipeline stages: $1 ($2 step(s), 512x512)"
    node scripts/bench.js --device cuda --model "$1" --steps "$2" --runs 10 2>&1 | tee "$OUT/bench-$1.txt"
  done
  say "LoRA fused on the GPU: rank-64 LCM-LoRA layout on SD-Turbo, first fusion and re-fusion at another scale"
  node scripts/bench-lora.js --device cuda --model sd_turbo --runs 3 2>&1 | tee "$OUT/bench-lora.txt"
fi
# sanitize (not part of all): what cusim cannot see — races between truly parallel warps, device
# memory errors — on the parity suite, under compute-sanitizer (works on Firecracker machines).
if [ "$stage" = sanitize ]; then
  if command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck synccheck; do
      say "compute-sanitizer --tool $tool, op parity on cuda"
      timeout 280 compute-sanitizer --tool "$tool" --error-exitcode 9 node scripts/gpu/mini-mocha.js test/graph/parity.test.js \
        > "$OUT/sanitizer-$tool.txt" 2>&1
      echo "exit $?" >> "$OUT/sanitizer-$tool.txt"
      tail -n 6 "$OUT/sanitizer-$tool.txt"
    done
  else
    say "compute-sanitizer is not on this machine"
  fi
fi
say "done; results in $OUT"
