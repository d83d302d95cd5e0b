// Op parity harness (ggml's test-backend-ops is the model): every op on fresh random inputs,
// compared with the plain float64 reference in test/helpers/reference_ops.js at a stated per-op
// tolerance (relative L2). Each backend runs every case: the CPU always; CUDA where a GPU answers
// (GEMM operands are fp16 there, so GEMM-based ops get an fp16 tolerance), and without one the
// CUDA suite is one loudly skipped test naming the reason. Every case is registered under the
// ops it tests (opCase), must really build a node of each, and the last test of each backend
// fails when an op of the table has no case.
'use strict';
const assert = require('assert');
const { GraphBuilder, Act, OP_NAMES } = require('../../dist/graph');
const { addon } = require('../../dist/native');
const { decodeToFloat32, encodeFromFloat32 } = require('../../dist/safetensors');
const ref = require('../helpers/reference_ops');
const { Rng } = require('../helpers/random');

const { info } = require('../..');

const cuda = info().backends.cuda;
// the emulated CUDA table (the CPU kernels behind it) and the ops it is told to leave out, which
// must then run on the CPU (ONESTEP_CUDA_EMULATE_WITHOUT)
const emulatedTable = /emulated on the CPU/.test(cuda.buildInfo || '');
const leftOut = new Set((emulatedTable && process.env.ONESTEP_CUDA_EMULATE_WITHOUT ? process.env.ONESTEP_CUDA_EMULATE_WITHOUT : '').split(',').filter(Boolean));
// The CUDA library's algorithm for a GEMM node (placements()), from what info() says it loaded
// (e.g. ONESTEP_CUBLASLT / ONESTEP_CUDNN naming cusim's stand-ins): cuBLASLt for linear and 1x1
// convolutions, cuDNN for the other convolutions (a fused upsampling or an asymmetric padding
// materialised for it), else its own tensor-core kernels — the pipelined mma GEMM where it takes the
// node (sm_80+, x stored in 16 bits, K or a conv's input channels `k` a multiple of 8; not with
// ONESTEP_CUDA_GEMM=wmma), else the WMMA one; the emulated table has one algorithm.
const loaded = (name) => (cuda.mathLibraries || []).some((m) => m.name === name && m.loaded);
const cublasLt = loaded('cuBLASLt');
const cudnn = loaded('cuDNN');
// tensor-core bf16 and mma.sync m16n8k16 need compute capability 8.0 (cusim: CUSIM_CC says which it reports)
const sm80 = (cuda.devices || []).every((d) => Number(d.computeCapability.split('.')[0]) >= 8);
function cudaGemmAlgo(pointwise, conv, k) {
  if (emulatedTable) return 'emulated';
  if (pointwise && cublasLt) return 'cublaslt';
  if (conv && cudnn) return 'cudnn';
  const mma = sm80 && storage16 && k % 8 === 0 && process.env.ONESTEP_CUDA_GEMM !== 'wmma';
  return (pointwise ? '' : 'implicit-gemm ') + (mma ? 'mma' : 'wmma');
}
const backends = ['cpu', 'cuda'];
const rng = new Rng();
// tolerance on a backend: fp16 tensor-core operands (GEMM, attention) on CUDA
const tolFor = (backend, tol, gemm) => (backend === 'cuda' && gemm ? Math.max(tol, 3e-3) : tol);
// CUDA stores activations in the graph's 16-bit type (fp16, bf16 for gemmOperand BF16) unless
// ONESTEP_CUDA_ACTIVATIONS=f32: the graph inputs are then rounded to it here, in place, before a run
// (so that the references, computed from the same arrays, see what the GPU sees), and every node
// whose output is stored so adds its rounding (a unit roundoff, relative) to the tolerance of the
// next check (placements() say how each output is stored).
const storage16 = cuda.usable && process.env.ONESTEP_CUDA_ACTIVATIONS !== 'f32';
const unitRoundoff = { F16: 2 ** -11, BF16: 2 ** -8 };
let lastRounding = 0;
const seedNote = `(ONESTEP_TEST_SEED=${rng.seed} reproduces)`;

function weight(dtype, shape, scale = 0.5) {
  const v = rng.float32Array(ref.numel(shape), scale);
  const t = addon().tensorFromFloat32(dtype, shape, v);
  // the values the engine really sees (rounded to the storage dtype)
  return { t, v: decodeToFloat32(dtype, encodeFromFloat32(dtype, v)), shape };
}

// the ops the running case's graphs contain (opCase checks its ops are among them)
let opsBuilt = new Set();

async function run1(backend, build, inputs, builderOptions = {}) {
  const g = new GraphBuilder({ device: backend, ...builderOptions });
  const vals = {};
  for (const [name, { shape, dtype }] of Object.entries(inputs)) vals[name] = g.input(name, shape, dtype || 'F32');
  if (backend === 'cuda' && storage16) {
    const t = builderOptions.gemmOperand === 'BF16' ? 'BF16' : 'F16';
    for (const { dtype, data } of Object.values(inputs)) if ((dtype || 'F32') === 'F32') data.set(decodeToFloat32(t, encodeFromFloat32(t, data)));
  }
  g.output('y', build(g, vals));
  const graph = build1(g);
  const feed = {};
  for (const [name, { data }] of Object.entries(inputs)) feed[name] = data;
  const out = await graph.run(feed);
  const y = out.y.toFloat32();
  const shape = out.y.shape;
  const placements = await graph.placements();
  lastRounding = placements.reduce((sum, p) => sum + (unitRoundoff[p.storage] || 0), 0);
  if (backend === 'cuda' && !storage16) assert.ok(placements.every((p) => p.storage === 'F32'), JSON.stringify(placements));
  for (const p of placements) if (backend === 'cuda' && leftOut.has(p.op)) assert.ok(p.fallback && p.backend === 'cpu', `${p.op} is left out of the table but ran on ${p.backend}`);
  out.y.dispose();
  graph.dispose();
  return { y, shape, placements };
}

const builders = [];
function build1(g) {
  builders.push(g);
  return g.build();
}
function collectOps() {
  for (const g of builders.splice(0)) for (const op of g.nodeOps()) opsBuilt.add(op);
}

function check(name, got, want, tol) {
  const e = ref.relL2(got, want);
  const t = tol + lastRounding;
  assert.ok(Number.isFinite(e) && e <= t, `${name}: rel L2 ${e.toExponential(2)} > ${t} ${seedNote}`);
}

const X = (shape, scale = 1) => ({ shape, data: rng.float32Array(ref.numel(shape), scale) });

for (const backend of backends) {
  if (backend === 'cuda' && !cuda.usable) {
    describe('op parity (cuda)', () => {
      it('runs every op on the GPU', function () {
        console.log(`      SKIPPED: no usable CUDA device (${cuda.reason})`);
        this.skip();
      });
    });
    continue;
  }
  const run1On = (build, inputs, builderOptions) => run1(backend, build, inputs, builderOptions);
  const covered = new Map(); // op -> case titles
  // it() for a case of these ops: it must build a node of each
  const opCase = (ops, title, fn) => {
    for (const op of [].concat(ops)) {
      if (!OP_NAMES.includes(op)) throw new Error(`parity case '${title}' names an unknown op ${op}`);
      covered.set(op, [...(covered.get(op) || []), title]);
    }
    it(title, async () => {
      opsBuilt = new Set();
      builders.length = 0;
      await fn();
      collectOps();
      for (const op of [].concat(ops)) assert.ok(opsBuilt.has(op), `'${title}' is registered for ${op} but built no ${op} node (built: ${[...opsBuilt].join(', ')})`);
    });
  };
  describe(`op parity (${backend})`, () => {
    for (const [dtype, tol] of [['F32', 1e-5], ['F16', 1e-5], ['BF16', 1e-5]]) {
      opCase('linear', `linear, ${dtype} weights, bias, act, residual, odd sizes`, async () => {
        // few rows and many (the prepacked GEMM's two schedules), depths over several packed blocks;
        // few rows on many panels (1100 columns: on up to 2 threads each packs its own A, and on
        // AVX-512 runs a tile over a group of depth blocks in one call: 1300 deep, two groups)
        for (const [M, K, N, act] of [[1, 8, 3, Act.None], [37, 50, 45, Act.Gelu], [77, 64, 33, Act.QuickGelu], [130, 300, 70, Act.Silu],
          [20, 900, 100, Act.None], [260, 1000, 50, Act.Relu], [300, 72, 260, Act.Gelu], [45, 700, 1100, Act.Gelu], [77, 1300, 1100, Act.None]]) {
          const x = X([M, K]);
          const w = weight(dtype, [N, K]);
          const b = weight('F32', [N]);
          const r = X([M, N]);
          const { y, placements } = await run1On((g, v) => g.linear(v.x, w.t, b.t, { act, residual: v.r }), { x, r });
          check(`linear ${M}x${K}x${N}`, y, ref.linear(x.data, x.shape, w.v, w.shape, b.v, act, r.data), tolFor(backend, tol, true));
          // the CPU packs F32 and F16 weights (as half panels: every micro-kernel reads them) once at plan time
          if (backend === 'cpu') {
            const prepacked = dtype === 'F32' || dtype === 'F16';
            assert.strictEqual(placements[0].algorithm, prepacked ? 'gemm_prepacked' : 'gemm');
          } else if (!leftOut.has('linear')) {
            assert.strictEqual(placements[0].algorithm, cudaGemmAlgo(true, null, K));
          }
        }
      });
    }

    opCase(['linear', 'conv2d'], 'linear and conv2d with bf16 tensor-core operands (gemmOperand BF16) keep fp32 range: activations beyond fp16 max', async () => {
      const tol = backend === 'cuda' ? 1e-2 : 1e-5;  // bf16 operands: 8 significant bits
      // before sm_80 such graphs get fp16 operands (docs/CUDA.md): these values overflow there, as documented
      const fp16Only = backend === 'cuda' && !sm80 && !emulatedTable;
      const rangeCheck = (name, got, want) =>
        fp16Only ? assert.ok(got.some((q) => !Number.isFinite(q)), `${name}: fp16 operands cannot hold 3e5-scaled values`) : check(name, got, want, tol);
      // depths and channels of both own GEMMs (the mma one takes multiples of 8)
      for (const K of [50, 48]) {
        const x = X([37, K], 3e5);
        const w = weight('F32', [45, K]);
        const b = weight('F32', [45]);
        const { y, placements } = await run1On((g, v) => g.linear(v.x, w.t, b.t), { x }, { gemmOperand: 'BF16' });
        rangeCheck(`linear, bf16 operands, K ${K}`, y, ref.linear(x.data, x.shape, w.v, w.shape, b.v, Act.None));
        if (backend === 'cuda' && !leftOut.has('linear')) assert.strictEqual(placements[0].algorithm, cudaGemmAlgo(true, null, K));
      }
      for (const C of [12, 16]) {
        const xc = X([1, 6, 5, C], 3e5);
        const wc = weight('F16', [9, C, 3, 3], 0.3);
        const bc = weight('F32', [9]);
        const { y: yc, placements } = await run1On(
          (g, v) => g.conv2d(v.x, wc.t, bc.t, { padding: [1, 1, 1, 1] }),
          { x: xc },
          { gemmOperand: 'BF16' },
        );
        const want = ref.conv2d(xc.data, xc.shape, wc.v, wc.shape, bc.v, { stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None });
        rangeCheck(`conv2d, bf16 operands, ${C} channels`, yc, want.y);
        if (backend === 'cuda' && !leftOut.has('conv2d')) assert.strictEqual(placements[0].algorithm, cudaGemmAlgo(false, {}, C));
      }
    });

    opCase('linear', 'linear without bias on a 3-D input', async () => {
      const x = X([2, 5, 16]);
      const w = weight('F32', [24, 16]);
      const { y, shape } = await run1On((g, v) => g.linear(v.x, w.t), { x });
      assert.deepStrictEqual(shape, [2, 5, 24]);
      check('linear', y, ref.linear(x.data, x.shape, w.v, w.shape), tolFor(backend, 1e-5, true));
    });

    // a conv case's random operands (x, the kernel, the bias, a residual where it has one), its
    // float64 reference on given x and kernel values, and a run of it on this backend
    const convCase = (c) => {
      const x = X(c.xs);
      const w = weight(c.dtype || 'F32', [c.co, c.xs[3], c.k, c.k], 0.3);
      const b = weight('F32', [c.co]);
      const geom = { stride: c.stride, pad: c.pad, up: c.up };
      const r = c.residual ? X(ref.conv2d(x.data, x.shape, w.v, w.shape, b.v, geom).shape) : undefined;
      const refOf = (xv, wv) => ref.conv2d(xv, x.shape, wv, w.shape, b.v, { ...geom, act: c.act, residual: r && r.data });
      const run = (builderOptions) =>
        run1On((g, v) => g.conv2d(v.x, w.t, b.t, { stride: c.stride, padding: c.pad, upsample: c.up, act: c.act, residual: v.r }), r ? { x, r } : { x }, builderOptions);
      return { x, w, refOf, run, want: refOf(x.data, w.v) };
    };
    const convCases = [
      { xs: [1, 9, 7, 5], co: 6, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None },
      { xs: [2, 8, 8, 16], co: 12, k: 3, stride: [2, 2], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16' },
      { xs: [1, 8, 6, 4], co: 8, k: 3, stride: [2, 2], pad: [0, 0, 1, 1], up: 1, act: Act.None }, // VAE downsample padding
      { xs: [1, 5, 4, 6], co: 7, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.None, dtype: 'BF16' }, // fused upsample
      { xs: [2, 6, 5, 10], co: 9, k: 1, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.Relu }, // pointwise path
      { xs: [1, 4, 4, 40], co: 33, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None, residual: true },
      { xs: [1, 13, 11, 24], co: 140, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16', residual: true }, // several tiles each way
      { xs: [2, 9, 7, 16], co: 20, k: 3, stride: [2, 2], pad: [0, 1, 1, 0], up: 1, act: Act.None }, // strided, asymmetric padding
      { xs: [1, 6, 5, 32], co: 24, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.None, dtype: 'F16' }, // fused upsample, 8-channel chunks
      { xs: [1, 3, 4, 8], co: 10, k: 3, stride: [2, 1], pad: [1, 0, 2, 1], up: 3, act: Act.None }, // upsampled by 3 (not a shift), strided
    ];
    // each case on every algorithm the backend may choose for it: on the CPU, Winograd (policy
    // 'always', for 3x3 stride 1) and the GEMMs (policy 'never'); elsewhere the backend's own choice
    const { setWinogradPolicy, winogradPolicy } = require('../../dist/graph');
    const winogradCases = [
      { xs: [1, 9, 7, 5], co: 6, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None },
      { xs: [2, 8, 8, 40], co: 33, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16' },
      { xs: [1, 5, 6, 17], co: 18, k: 3, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.None }, // odd output size, no padding
      { xs: [1, 5, 4, 20], co: 7, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.Relu, dtype: 'BF16' }, // fused upsample
      { xs: [1, 6, 6, 48], co: 50, k: 3, stride: [1, 1], pad: [0, 1, 2, 0], up: 1, act: Act.None, residual: true }, // asymmetric padding
      { xs: [1, 30, 34, 12], co: 45, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16', residual: true }, // 255 tiles: blocks over the threads
      { xs: [1, 5, 6, 400], co: 40, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None }, // depth 400: two blocks of prepacked panels
    ];
    // (and F(4x4, 3x3): policy 'f4x4')
    // outside Winograd the CPU runs a conv to at most 8 channels from 16 or more by its narrow
    // GEMM (where the kernel has one), else by the GEMMs (pointwise: unpadded 1x1 stride 1)
    const narrowCpu = addon().gemmInfo().narrow;
    const narrow = (c) => narrowCpu && c.co <= 8 && c.xs[3] >= 16;
    const directAlgo = (c, suffix = '') => narrow(c) ? 'narrow_gemm' : (c.k === 1 && c.pad.every((p) => p === 0) && c.up === 1 ? 'gemm_1x1' : 'implicit_gemm') + suffix;
    const policies = backend === 'cpu' ? ['never', 'always', 'f4x4'] : [undefined];
    for (const c of [...convCases, ...winogradCases]) {
      for (const policy of policies) {
        const winograd = (policy === 'always' || policy === 'f4x4') && c.k === 3 && c.stride[0] === 1 && c.stride[1] === 1;
        if ((policy === 'always' || policy === 'f4x4') && !winograd) continue;
        const algo = backend !== 'cpu' ? '' : winograd ? (policy === 'f4x4' ? 'winograd_f4x4' : 'winograd') : directAlgo(c);
        opCase('conv2d', `conv2d ${c.k}x${c.k} x${JSON.stringify(c.xs)} -> ${c.co}, stride ${c.stride}, pad ${c.pad}, up ${c.up}, ${c.dtype || 'F32'}${c.residual ? ', residual' : ''}${algo ? `, ${algo}` : ''}`, async () => {
          const { run, want } = convCase(c);
          const before = winogradPolicy();
          if (policy) setWinogradPolicy(policy);
          let got;
          try {
            got = await run();
          } finally {
            setWinogradPolicy(before);
          }
          assert.deepStrictEqual(got.shape, want.shape);
          if (algo) assert.strictEqual(got.placements[got.placements.length - 1].algorithm, algo);
          const pointwise = c.k === 1 && c.pad.every((p) => p === 0) && c.up === 1 && c.stride.every((s) => s === 1);
          if (backend === 'cuda' && !leftOut.has('conv2d')) assert.strictEqual(got.placements[got.placements.length - 1].algorithm, cudaGemmAlgo(pointwise, c, c.xs[3]));
          // F(4x4, 3x3)'s transforms (coefficients up to 8) amplify float32 rounding more
          check(`conv2d ${algo}`, got.y, want.y, winograd ? (policy === 'f4x4' ? 1e-5 : 2e-6) : tolFor(backend, 1e-5, true));
        });
      }
    }

    // precision 'bf16' on the CPU: GEMMs on constant weights with bf16 operands and float32
    // accumulation, on every bf16 kernel this CPU runs and on the portable one (the same
    // arithmetic, so machines without bf16 test it too). Compared with the float64 reference on
    // bf16-rounded operands (only the summation order differs), and with the unrounded one at bf16's
    // fidelity.
    if (backend === 'cpu') {
      const a = addon();
      const bf = (v) => decodeToFloat32('BF16', encodeFromFloat32('BF16', v));
      const bf16Kernels = ['amx_bf16', 'avx512_bf16', 'generic'].filter((k) => {
        const ok = a.gemmSelectBf16(k);
        a.gemmSelectBf16('auto');
        return ok;
      });
      const withKernel = async (k, fn) => {
        assert.ok(a.gemmSelectBf16(k), k);
        try {
          return await fn();
        } finally {
          a.gemmSelectBf16('auto');
        }
      };
      const linearCases = [[1, 8, 3, Act.None], [37, 50, 45, Act.Gelu], [77, 64, 33, Act.QuickGelu], [130, 300, 70, Act.Silu],
        [20, 900, 100, Act.None], [300, 1100, 70, Act.Relu], [33, 1030, 97, Act.None], [45, 700, 1100, Act.Gelu]];
      const bf16ConvCases = [
        { xs: [1, 9, 7, 5], co: 6, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None },
        { xs: [2, 8, 8, 16], co: 12, k: 3, stride: [2, 2], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16' },
        { xs: [1, 8, 6, 4], co: 8, k: 3, stride: [2, 2], pad: [0, 0, 1, 1], up: 1, act: Act.None },
        { xs: [1, 5, 4, 20], co: 7, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.Relu, dtype: 'BF16' }, // (the narrow GEMM where the kernel has one)
        { xs: [1, 5, 4, 20], co: 12, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.Relu, dtype: 'BF16' }, // upsampled input rounded to bf16 while packed
        { xs: [2, 6, 5, 10], co: 9, k: 1, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.Relu },
        { xs: [1, 6, 6, 48], co: 50, k: 3, stride: [1, 1], pad: [0, 1, 2, 0], up: 1, act: Act.None, residual: true },
        { xs: [1, 12, 11, 67], co: 40, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None }, // depth 603: two blocks, odd runs
        { xs: [1, 20, 20, 32], co: 70, k: 1, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.None, residual: true }, // 400 rows
      ];
      for (const kernel of bf16Kernels) {
        for (const dtype of ['F32', 'F16', 'BF16']) {
          opCase('linear', `linear at precision bf16 (${kernel} kernel), ${dtype} weights, bias, act, residual, odd sizes`, () => withKernel(kernel, async () => {
            for (const [M, K, N, act] of linearCases) {
              const x = X([M, K]);
              const w = weight(dtype, [N, K]);
              const b = weight('F32', [N]);
              const r = X([M, N]);
              const { y, placements } = await run1On((g, v) => g.linear(v.x, w.t, b.t, { act, residual: v.r }), { x, r }, { precision: 'bf16' });
              assert.strictEqual(placements[0].algorithm, 'gemm_bf16');
              check(`linear ${M}x${K}x${N} on bf16 operands`, y, ref.linear(bf(x.data), x.shape, bf(w.v), w.shape, b.v, act, r.data), 1e-5);
              // bf16's distance from float32 (a handful of outputs can cancel to anything: not the 1x8x3 case)
              if (M * N >= 256) check(`linear ${M}x${K}x${N} against float32`, y, ref.linear(x.data, x.shape, w.v, w.shape, b.v, act, r.data), 1e-2);
            }
          }));
        }
        opCase('conv2d', `conv2d at precision bf16 (${kernel} kernel): 3x3, strided, padded, upsampled, 1x1, residual`, () => withKernel(kernel, async () => {
          for (const c of bf16ConvCases) {
            const { x, w, refOf, run, want: want32 } = convCase(c);
            const got = await run({ precision: 'bf16' });
            assert.strictEqual(got.placements[got.placements.length - 1].algorithm, directAlgo(c, '_bf16'));
            const want = refOf(bf(x.data), bf(w.v));
            assert.deepStrictEqual(got.shape, want.shape);
            const what = `conv2d ${c.k}x${c.k} ${JSON.stringify(c.xs)} -> ${c.co}`;
            // the narrow GEMM keeps float32 operands at either precision
            if (narrow(c)) check(`${what} (narrow) against float32`, got.y, want32.y, 1e-5);
            else check(`${what} on bf16 operands`, got.y, want.y, 1e-5);
            check(`${what} against float32`, got.y, want32.y, 1e-2);
          }
        }));
      }

      // the weights' rounding to bf16 at compile time, bit for bit at the cases that decide it:
      // ties to even (either way), next to ties, denormals, negatives, the largest finite values;
      // one-hot rows read each rounded weight back exactly (y[i][n] = bf16(w[n][i])) on the
      // portable kernel (VDPBF16PS flushes denormals; a sum of -0 and +0 products is +0, so no
      // weight here rounds to -0)
      opCase('linear', 'linear at precision bf16: F32 and F16 weights rounded to bf16 exactly (ties to even, denormals)', () => withKernel('generic', async () => {
        const bits32 = [0x3f808000, 0x3f818000, 0x3f817fff, 0x3f818001, 0xbf808000, 0xbf818000, 0x00008000, 0x00018000,
          0x00017fff, 0x80038000, 0xc0808000, 0x7f7f7fff, 0xff7f7fff, 0x3f800000, 0x42c98000, 0x4049ffff];
        const K = 8, N = bits32.length / K * 2;
        const w32 = new Float32Array(new Uint32Array([...bits32, ...bits32.map((b) => (b ^ 0x00010000) >>> 0)]).buffer);
        // F16 weights: 11 significant bits to 8, ties common (the odd multiples of 4 ulp)
        const w16 = Float32Array.from({ length: N * K }, (_, i) => (i % 2 ? -1 : 1) * (1 + (4 * i + 4 + (i % 3)) / 1024) * 2 ** ((i % 9) - 4));
        const x = new Float32Array(K * K);
        for (let i = 0; i < K; i++) x[i * K + i] = 1;
        for (const [dtype, wv] of [['F32', w32], ['F16', w16]]) {
          const wt = a.tensorFromFloat32(dtype, [N, K], wv);
          const seen = wt.toFloat32(); // the values the engine holds (F16: the halves)
          const { y, placements } = await run1On((g, v) => g.linear(v.x, wt), { x: { data: x, shape: [K, K] } }, { precision: 'bf16' });
          assert.strictEqual(placements[0].algorithm, 'gemm_bf16');
          const want = new Float32Array(K * N);
          for (let i = 0; i < K; i++) for (let n = 0; n < N; n++) want[i * N + n] = bf(Float32Array.of(seen[n * K + i]))[0];
          assert.deepStrictEqual(new Uint32Array(Float32Array.from(y).buffer), new Uint32Array(want.buffer), `${dtype} weights rounded to bf16`);
        }
      }));

      // one float32 value rounded to bf16 (nearest even), as the packers do
      const bf1 = (x) => bf(Float32Array.of(x))[0];
      for (const kernel of bf16Kernels) {
        opCase('attention', `attention at precision bf16 (${kernel} kernel): self and cross, padded head sizes, causal, long keys`, () => withKernel(kernel, async () => {
          // keys in blocks of the bf16 depth block (an online softmax) where the head fits one
          // block; a longer head (520) the whole row at once, normalised probabilities rounded
          const keyBlock = a.gemmInfo().bf16DepthBlock;
          for (const [B, Nq, Nk, H, D, Dv, causal] of [[1, 37, 37, 2, 64, 64, false], [2, 20, 77, 3, 40, 40, false], [1, 150, 150, 1, 96, 80, true],
            [1, 9, 600, 1, 33, 20, false], [1, 130, 1100, 2, 64, 48, true], [1, 9, 60, 1, 520, 24, false]]) {
            const q = X([B, Nq, H * D]), k = X([B, Nk, H * D]), v = X([B, Nk, H * Dv]);
            const scale = 1 / Math.sqrt(D);
            const { y, placements } = await run1On((g, x) => g.attention(x.q, x.k, x.v, H, scale, causal), { q, k, v }, { precision: 'bf16' });
            assert.strictEqual(placements[0].algorithm, 'bf16');
            const what = `attention B${B} Nq${Nq} Nk${Nk} H${H} D${D} Dv${Dv}${causal ? ' causal' : ''}`;
            // Q, K, V and the probabilities rounded to bf16. The kernel's float32 scores differ from
            // the reference's in their last bits, so a probability within that of a rounding
            // midpoint may round the other way: its bf16 step times |v| is allowed (y.slack)
            const roundP = (p) => bf1(Math.fround(p));
            const tieSlack = (p) => {
              if (!(p > 0)) return 0;
              const ulp = 2 ** (Math.floor(Math.log2(p)) - 7);
              return Math.abs(((p / ulp) % 1) - 0.5) < 2e-3 ? ulp : 0;
            };
            const want = D <= keyBlock
              ? ref.attentionBlocked(bf(q.data), q.shape, bf(k.data), k.shape, bf(v.data), v.shape, H, scale, causal, keyBlock, roundP, tieSlack)
              : ref.attention(bf(q.data), q.shape, bf(k.data), k.shape, bf(v.data), v.shape, H, scale, causal, roundP, tieSlack);
            const exact = ref.attention(q.data, q.shape, k.data, k.shape, v.data, v.shape, H, scale, causal);
            const beyond = Float64Array.from(y, (yi, i) => want[i] + Math.sign(yi - want[i]) * Math.max(0, Math.abs(yi - want[i]) - want.slack[i]));
            check(`${what} on bf16 operands (beyond ties)`, beyond, want, 1e-5);
            check(`${what} against float32`, y, exact, 1e-2);
          }
        }));
        opCase('conv2d', `conv2d by Winograd at precision bf16 (${kernel} kernel): bf16 transformed operands, within bf16 of float32`, () => withKernel(kernel, async () => {
          const { setWinogradPolicy: setPolicy, winogradPolicy: policyNow } = require('../../dist/graph');
          const before = policyNow();
          setPolicy('always');
          try {
            for (const c of [
              { xs: [1, 9, 7, 5], co: 6, pad: [1, 1, 1, 1], up: 1, act: Act.None },
              { xs: [2, 8, 8, 40], co: 33, pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16' },
              { xs: [1, 5, 6, 17], co: 18, pad: [0, 0, 0, 0], up: 1, act: Act.None },
              { xs: [1, 5, 4, 20], co: 7, pad: [1, 1, 1, 1], up: 2, act: Act.Relu, dtype: 'BF16' },
              { xs: [1, 6, 6, 600], co: 50, pad: [0, 1, 2, 0], up: 1, act: Act.None, residual: true }, // depth 600: two blocks
              { xs: [1, 7, 6, 40], co: 100, pad: [1, 1, 1, 1], up: 1, act: Act.Silu, residual: true }, // output channels in chunks (64 + 36)
              { xs: [2, 17, 15, 8], co: 20, pad: [1, 1, 1, 1], up: 1, act: Act.None }, // 144 tiles: blocks over the threads
            ]) {
              const x = X(c.xs);
              const w = weight(c.dtype || 'F32', [c.co, c.xs[3], 3, 3], 0.3);
              const b = weight('F32', [c.co]);
              const geom = { stride: [1, 1], pad: c.pad, up: c.up };
              const inputs = { x };
              const r = c.residual ? X(ref.conv2d(x.data, x.shape, w.v, w.shape, b.v, geom).shape) : undefined;
              if (r) inputs.r = r;
              const got = await run1On((g, v) => g.conv2d(v.x, w.t, b.t, { padding: c.pad, upsample: c.up, act: c.act, residual: v.r }), inputs, { precision: 'bf16' });
              assert.strictEqual(got.placements[0].algorithm, 'winograd_bf16');
              const want = ref.conv2d(x.data, x.shape, w.v, w.shape, b.v, { ...geom, act: c.act, residual: r && r.data });
              // bf16 operands of the transformed domain: a few bf16 roundings (2^-9) in all
              check(`conv2d winograd_bf16 ${JSON.stringify(c.xs)} -> ${c.co}`, got.y, want.y, 8e-3);
            }
          } finally {
            setPolicy(before);
          }
        }));
      }

      opCase(['linear', 'conv2d', 'unary'], 'precision bf16 leaves GEMMs on computed weights in float32', () => withKernel(bf16Kernels[0], async () => {
        const x = X([1, 66, 65, 32]); // 66 x 65 pixels, 32 channels: Winograd's under policy 'auto'
        const w = X([7, 32, 3, 3], 0.3);
        const wc = weight('F32', [40, 32, 3, 3], 0.3);
        const { y, placements } = await run1On((g, v) => g.conv2d(v.x, g.unary(v.w, { a: 1, b: 0 }), undefined, { padding: 1 }), { x, w }, { precision: 'bf16' });
        assert.strictEqual(placements.find((p) => p.op === 'conv2d').algorithm, 'implicit_gemm');
        check('conv2d on a computed kernel at precision bf16', y, ref.conv2d(x.data, x.shape, w.data, w.shape, undefined, { pad: [1, 1, 1, 1] }).y, 1e-5);
        // a constant kernel of that size: Winograd on bf16 operands; from 32x32 pixels in both
        // precisions, below it the implicit GEMM
        const { placements: p2 } = await run1On((g, v) => g.conv2d(v.x, wc.t, undefined, { padding: 1 }), { x }, { precision: 'bf16' });
        assert.strictEqual(p2[0].algorithm, 'winograd_bf16');
        for (const [xs, precision, algorithm] of [[[1, 32, 33, 32], 'bf16', 'winograd_bf16'], [[1, 32, 33, 32], 'fp32', 'winograd'], [[1, 31, 32, 32], 'bf16', 'implicit_gemm_bf16'], [[1, 31, 32, 32], 'fp32', 'implicit_gemm']]) {
          const { placements: p3 } = await run1On((g, v) => g.conv2d(v.x, wc.t, undefined, { padding: 1 }), { x: X(xs) }, { precision });
          assert.strictEqual(p3[0].algorithm, algorithm, `${precision} at ${xs[1]}x${xs[2]}`);
        }
        const xm = X([3, 16]);
        const wm = X([5, 16]);
        const { y: ym, placements: pm } = await run1On((g, v) => g.linear(v.x, g.unary(v.w, { a: 1, b: 0 })), { x: xm, w: wm }, { precision: 'bf16' });
        assert.strictEqual(pm.find((p) => p.op === 'linear').algorithm, 'gemm');
        check('linear on a computed weight at precision bf16', ym, ref.linear(xm.data, xm.shape, wm.data, wm.shape), 1e-5);
      }));

      it('precision bf16 is refused, naming the reason, where the CPU has no bf16 kernel', async () => {
        assert.ok(a.gemmSelectBf16('none'));
        try {
          assert.strictEqual(a.gemmInfo().bf16Kernel, null);
          const g = new GraphBuilder({ precision: 'bf16' });
          g.output('y', g.linear(g.input('x', [2, 4]), weight('F32', [3, 4]).t));
          await assert.rejects(async () => (await g.build()).ready(), (e) => e.code === 'ERR_ONESTEP_UNSUPPORTED' && /AVX512_BF16 or AMX-BF16/.test(e.message));
        } finally {
          a.gemmSelectBf16('auto');
        }
        assert.ok(!a.gemmSelectBf16('no_such_kernel'));
      });
    }

    // few output channels (a decoder's last conv, to RGB): on the CPU the narrow GEMM (vectorized
    // along the input channels; row groups of 16 for one column ... 2 for eight, blocks of 48
    // rows), at precision fp32 and bf16 alike in float32; M is no multiple of the groups
    const narrowCases = [
      { xs: [1, 13, 11, 16], co: 3, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None },
      { xs: [2, 9, 10, 20], co: 1, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Silu, dtype: 'F16' }, // a vector and 4 channels
      { xs: [1, 7, 9, 67], co: 2, k: 3, stride: [2, 2], pad: [0, 1, 1, 0], up: 1, act: Act.None, residual: true }, // strided, asymmetric
      { xs: [1, 6, 5, 32], co: 4, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 2, act: Act.None, dtype: 'BF16' }, // fused upsample
      { xs: [1, 4, 3, 17], co: 3, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 3, act: Act.None }, // upsampled by 3
      { xs: [1, 8, 7, 48], co: 5, k: 1, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.Relu }, // pointwise: dense rows
      { xs: [1, 11, 12, 24], co: 6, k: 3, stride: [1, 1], pad: [0, 0, 0, 0], up: 1, act: Act.None }, // no padding
      { xs: [1, 10, 10, 40], co: 7, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.Gelu, residual: true },
      { xs: [1, 9, 9, 130], co: 8, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None, dtype: 'F16' },
      { xs: [1, 5, 7, 16], co: 9, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None }, // 9 channels: the GEMMs
      { xs: [1, 5, 7, 15], co: 3, k: 3, stride: [1, 1], pad: [1, 1, 1, 1], up: 1, act: Act.None }, // 15 in: the GEMMs
    ];
    opCase('conv2d', 'conv2d to few output channels (the CPU\'s narrow GEMM), at precision fp32 and bf16', async () => {
      // bf16 graphs on the CPU only (a CPU without a bf16 kernel: the portable one, forced)
      const forceBf16 = backend === 'cpu' && addon().gemmInfo().bf16Kernel === null;
      for (const c of narrowCases) {
        const { run, want } = convCase(c);
        const what = `conv2d ${c.k}x${c.k} ${JSON.stringify(c.xs)} -> ${c.co}`;
        for (const precision of backend === 'cpu' ? ['fp32', 'bf16'] : ['fp32']) {
          if (precision === 'bf16' && forceBf16) assert.ok(addon().gemmSelectBf16('generic'));
          let got;
          try {
            got = await run({ precision });
          } finally {
            if (precision === 'bf16' && forceBf16) addon().gemmSelectBf16('auto');
          }
          assert.deepStrictEqual(got.shape, want.shape);
          if (backend === 'cpu') assert.strictEqual(got.placements[0].algorithm, directAlgo(c, precision === 'bf16' ? '_bf16' : ''), `${what} at ${precision}`);
          check(`${what} at ${precision}`, got.y, want.y, precision === 'bf16' && !narrow(c) ? 1e-2 : tolFor(backend, 1e-5, true));
        }
      }
      if (backend === 'cpu' && narrowCpu) {
        // a plan made for the narrow kernel, run after the GEMM kernel changed (a test's switch):
        // the same values by the GEMMs
        const c = narrowCases[0];
        const x = X(c.xs);
        const w = weight('F32', [c.co, c.xs[3], 3, 3], 0.3);
        const g = new GraphBuilder({ device: 'cpu' });
        g.output('y', g.conv2d(g.input('x', x.shape), w.t, undefined, { padding: 1 }));
        const graph = build1(g);
        assert.strictEqual((await graph.placements())[0].algorithm, 'narrow_gemm');
        const kernel = addon().gemmInfo().kernel;
        assert.ok(addon().gemmSelect('generic'));
        try {
          const out = await graph.run({ x: x.data });
          check('narrow plan on the generic kernel', out.y.toFloat32(), ref.conv2d(x.data, x.shape, w.v, w.shape, undefined, { pad: [1, 1, 1, 1] }).y, 1e-5);
          out.y.dispose();
        } finally {
          assert.ok(addon().gemmSelect(kernel));
          graph.dispose();
        }
      }
    });

    // the float32 GEMM kernels other than the CPU's own choice that it can run (AVX2 on an AVX-512
    // CPU, the portable one): every conv case by each algorithm (Winograd, the GEMMs, the narrow
    // GEMM where the kernel has it) and linear layers of both work splits
    if (backend === 'cpu') {
      const own = addon().gemmInfo().kernel;
      const others = ['avx512', 'avx2', 'generic'].filter((k) => k !== own && addon().gemmSelect(k));
      addon().gemmSelect(own);
      for (const kernel of others) {
        opCase(['linear', 'conv2d'], `linear and conv2d on the ${kernel} GEMM kernel`, async () => {
          assert.ok(addon().gemmSelect(kernel));
          const before = winogradPolicy();
          try {
            const nar = addon().gemmInfo().narrow;
            for (const c of [...convCases, ...winogradCases, ...narrowCases]) {
              for (const policy of ['never', 'always', 'f4x4']) {
                const winograd = policy !== 'never' && c.k === 3 && c.stride[0] === 1 && c.stride[1] === 1;
                if (policy !== 'never' && !winograd) continue;
                const { run, want } = convCase(c);
                setWinogradPolicy(policy);
                const got = await run();
                const algo = winograd ? (policy === 'f4x4' ? 'winograd_f4x4' : 'winograd')
                  : nar && c.co <= 8 && c.xs[3] >= 16 ? 'narrow_gemm' : c.k === 1 && c.pad.every((p) => p === 0) && c.up === 1 ? 'gemm_1x1' : 'implicit_gemm';
                const what = `${kernel}: conv2d ${c.k}x${c.k} ${JSON.stringify(c.xs)} -> ${c.co}, ${algo}`;
                assert.strictEqual(got.placements[0].algorithm, algo, what);
                check(what, got.y, want.y, policy === 'f4x4' ? 1e-5 : winograd ? 2e-6 : 1e-5);
              }
            }
            for (const [M, K, N, act] of [[37, 50, 45, Act.Gelu], [77, 600, 33, Act.QuickGelu], [260, 1000, 50, Act.Relu]]) {
              for (const dtype of ['F32', 'F16']) {
                const x = X([M, K]), w = weight(dtype, [N, K]), b = weight('F32', [N]), r = X([M, N]);
                const { y } = await run1On((g, v) => g.linear(v.x, w.t, b.t, { act, residual: v.r }), { x, r });
                check(`${kernel}: linear ${M}x${K}x${N}, ${dtype}`, y, ref.linear(x.data, x.shape, w.v, w.shape, b.v, act, r.data), 1e-5);
              }
            }
          } finally {
            setWinogradPolicy(before);
            assert.ok(addon().gemmSelect(own));
          }
        });
      }
    }

    if (backend === 'cpu') opCase('conv2d', 'conv2d picks Winograd for large 3x3 stride-1 convs (policy auto; F(4x4, 3x3) from 64x64) and matches the direct kernel', async () => {
      const before = winogradPolicy();
      try {
        // 66 x 65 >= 64 x 64 pixels: auto picks F(4x4, 3x3); 34 x 33 >= 32 x 32: F(2x2, 3x3)
        for (const [xs, algorithm, tol] of [[[1, 66, 65, 32], 'winograd_f4x4', 1e-5], [[1, 34, 33, 32], 'winograd', 2e-6]]) {
          const x = X(xs);
          const w = weight('F32', [40, 32, 3, 3], 0.2);
          const results = {};
          for (const p of ['never', 'auto']) {
            setWinogradPolicy(p);
            const g = new GraphBuilder({ device: backend });
            g.output('y', g.conv2d(g.input('x', x.shape), w.t, undefined, { padding: 1 }));
            const graph = build1(g);
            results[p] = (await graph.run({ x: x.data })).y.toFloat32();
            assert.strictEqual((await graph.placements())[0].algorithm, p === 'auto' ? algorithm : 'implicit_gemm');
            graph.dispose();
          }
          check(`${algorithm} vs direct`, results.auto, results.never, tol);
        }
        const w = weight('F32', [40, 32, 3, 3], 0.2);
        // below the threshold auto keeps the direct kernel
        setWinogradPolicy('auto');
        const { placements } = await run1On((g, v) => g.conv2d(v.x, w.t, undefined, { padding: 1 }), { x: X([1, 20, 20, 32]) });
        assert.strictEqual(placements[0].algorithm, 'implicit_gemm');
      } finally {
        setWinogradPolicy(before);
      }
    });

    // a conv2d whose kernel the graph computes: the CPU relays it out per run; CUDA runs the node on
    // the CPU (its kernels read weights relaid out at upload), its inputs and output crossing over
    // from and to the device nodes around it
    opCase(['conv2d', 'unary'], 'conv2d on a computed kernel, between other nodes', async () => {
      const x = X([1, 6, 5, 8]), w = X([7, 8, 3, 3], 0.3);
      const b = weight('F32', [7]);
      const { y, placements } = await run1On((g, v) => g.unary(g.conv2d(v.x, g.unary(v.w, { a: 0.5, b: 0.1 }), b.t, { padding: 1 }), { act: Act.Silu }), { x, w });
      const conv = ref.conv2d(x.data, x.shape, ref.unary(w.data, { a: 0.5, b: 0.1 }), w.shape, b.v, { pad: [1, 1, 1, 1] });
      check('conv2d on a computed kernel', y, ref.unary(conv.y, { act: Act.Silu }), 1e-5);
      const c = placements.find((p) => p.op === 'conv2d');
      if (backend === 'cuda') assert.ok(c.fallback && c.backend === 'cpu' && /kernel is computed/.test(c.reason), JSON.stringify(c));
      else assert.strictEqual(c.algorithm, 'implicit_gemm');
      for (const p of placements.filter((q) => q.op === 'unary')) assert.strictEqual(p.backend, backend === 'cuda' && leftOut.has('unary') ? 'cpu' : backend);
    });

    opCase('group_norm', 'group_norm with and without fused SiLU', async () => {
      // a mean far from 0; [2, 40, 30, 40]: many pixels (several partial sums per channel), 40 channels
      // (not a multiple of the vector width), a mean 50x the spread; the last two: more pixels than
      // the CUDA kernel's chunks take one by one (16900), 6 channels (its scalar path) and 12 (four at a time)
      for (const [xs, groups, act, offset] of [[[2, 4, 3, 16], 4, Act.None, 3], [[1, 8, 8, 32], 8, Act.Silu, 3], [[1, 1, 5, 6], 3, Act.Silu, 3],
        [[2, 40, 30, 40], 8, Act.Gelu, 100], [[1, 130, 130, 6], 2, Act.Silu, 5], [[2, 130, 130, 12], 3, Act.None, 1]]) {
        const x = X(xs, 2);
        for (let i = 0; i < x.data.length; i++) x.data[i] += offset;
        const gm = weight('F32', [xs[3]]), bt = weight('F32', [xs[3]]);
        const { y } = await run1On((g, v) => g.groupNorm(v.x, gm.t, bt.t, groups, 1e-6, act), { x });
        check(`group_norm ${xs}`, y, ref.groupNorm(x.data, xs, gm.v, bt.v, groups, 1e-6, act), 1e-5);
      }
    });

    // gamma and beta computed by the graph (graph inputs here): on CUDA they are activations, stored in 16 bits
    opCase(['layer_norm', 'group_norm'], 'layer_norm and group_norm with gamma and beta given as values', async () => {
      const x = X([3, 7, 24], 3), gm = X([24]), bt = X([24]);
      const ln = await run1On((g, v) => g.layerNorm(v.x, v.gm, v.bt, 1e-5), { x, gm, bt });
      check('layer_norm, gamma and beta as values', ln.y, ref.layerNorm(x.data, x.shape, gm.data, bt.data, 1e-5), 1e-5);
      const xs = [1, 5, 6, 24], xg = X(xs, 2);
      const gn = await run1On((g, v) => g.groupNorm(v.x, v.gm, v.bt, 4, 1e-6, Act.Silu), { x: xg, gm, bt });
      check('group_norm, gamma and beta as values', gn.y, ref.groupNorm(xg.data, xs, gm.data, bt.data, 4, 1e-6, Act.Silu), 1e-5);
    });

    opCase('layer_norm', 'layer_norm', async () => {
      // widths below one vector, with a partial last vector, and of the networks' (1024: OpenCLIP);
      // rows whose mean is far from zero (the variance from deviations, not from sums of squares)
      for (const [C, offset] of [[20, 0], [77, 0], [1024, 0], [48, 40], [320, 1e4]]) {
        const x = X([3, 7, C], 3);
        for (let i = 0; i < x.data.length; i++) x.data[i] += offset;
        const gm = weight('F32', [C]), bt = weight('F32', [C]);
        const { y } = await run1On((g, v) => g.layerNorm(v.x, gm.t, bt.t, 1e-5), { x });
        check(`layer_norm ${C} wide, mean ${offset}`, y, ref.layerNorm(x.data, x.shape, gm.v, bt.v, 1e-5), 1e-5);
      }
    });

    // head sizes: small and odd ones, SD1.x's 40, 80 and 160, CLIP / SD2.x / SDXL's 64 (causal for
    // CLIP), 128, keys and values of different sizes, and the VAE's 512; several key tiles (with a
    // partial last one) and more than one block of queries
    for (const [B, Nq, Nk, H, D, Dv, causal] of [[1, 5, 5, 1, 8, 8, false], [2, 77, 77, 2, 4, 4, true], [1, 130, 77, 4, 16, 16, false],
      [1, 70, 200, 1, 24, 12, false], [2, 96, 77, 2, 40, 40, false], [1, 77, 77, 2, 64, 64, true], [1, 150, 33, 1, 64, 64, false],
      [1, 40, 30, 1, 80, 72, false], [2, 33, 47, 3, 72, 96, true], [2, 20, 31, 2, 160, 80, false], [1, 64, 64, 1, 512, 512, false],
      [1, 130, 200, 2, 80, 80, false], [2, 70, 90, 1, 160, 160, true], [1, 33, 150, 2, 128, 128, false], [2, 70, 130, 3, 36, 36, false],
      [1, 200, 77, 2, 40, 40, true]]) {
      opCase('attention', `attention B${B} Nq${Nq} Nk${Nk} H${H} D${D} Dv${Dv}${causal ? ' causal' : ''}`, async () => {
        const q = X([B, Nq, H * D]), k = X([B, Nk, H * D]), v = X([B, Nk, H * Dv]);
        const scale = 1 / Math.sqrt(D);
        const { y, placements } = await run1On((g, x) => g.attention(x.q, x.k, x.v, H, scale, causal), { q, k, v });
        // CUDA (sm_80+): heads up to 160, keys and values alike, on the FA2-style mma kernel; else heads
        // up to 64 on the WMMA flash kernel; larger ones as cuBLASLt's two GEMMs where it is loaded
        // (fp16 operands), else one warp per query in fp32. ONESTEP_CUDA_ATTENTION=wmma keeps heads
        // up to 64 on the WMMA kernel; =cublaslt gives cuBLASLt every head size (a multiple of 8) it takes
        const mode = process.env.ONESTEP_CUDA_ATTENTION || 'auto';
        const mma = mode === 'auto' && sm80 && D === Dv && D <= 160;
        const flash = D <= 64 && Dv <= 64;
        const lt = !mma && cublasLt && D % 8 === 0 && Dv % 8 === 0 && (!flash || mode === 'cublaslt');
        const algo = emulatedTable ? 'emulated' : mma ? 'flash mma' : lt ? 'cublaslt' : flash ? 'flash wmma' : 'warp per query';
        if (backend === 'cuda' && !leftOut.has('attention')) assert.strictEqual(placements[0].algorithm, algo);
        const fp16 = mma || flash || lt;
        check('attention', y, ref.attention(q.data, q.shape, k.data, k.shape, v.data, v.shape, H, scale, causal), tolFor(backend, 1e-5, fp16));
      });
    }

    // beyond the CUDA kernel (head size 512): the node runs on the CPU there, and says why
    opCase('attention', 'attention with a head size of 520 (beyond the CUDA kernel)', async () => {
      const [B, Nq, Nk, H, D] = [1, 9, 7, 2, 520];
      const q = X([B, Nq, H * D]), k = X([B, Nk, H * D]), v = X([B, Nk, H * D]);
      const scale = 1 / Math.sqrt(D);
      const { y, placements } = await run1On((g, x) => g.attention(x.q, x.k, x.v, H, scale, false), { q, k, v });
      check('attention D520', y, ref.attention(q.data, q.shape, k.data, k.shape, v.data, v.shape, H, scale, false), 1e-5);
      const a = placements.find((p) => p.op === 'attention');
      if (backend === 'cuda' && !emulatedTable) assert.ok(a.fallback && /head size 520/.test(a.reason), JSON.stringify(a));
      if (backend === 'cuda' && emulatedTable) assert.strictEqual(a.fallback, leftOut.has('attention'));
      if (backend === 'cpu') assert.ok(!a.fallback && a.backend === 'cpu');
    });

    for (const [as, bs] of [[[2, 3, 4, 5], [2, 3, 4, 5]], [[2, 3, 4, 5], [5]], [[2, 3, 4, 5], [2, 1, 1, 5]], [[2, 3, 4, 5], [3, 1, 1]], [[4, 6], [1]]]) {
      opCase(['add', 'mul'], `add and mul broadcast ${JSON.stringify(bs)} to ${JSON.stringify(as)}`, async () => {
        const a = X(as), b = X(bs);
        for (const op of ['add', 'mul']) {
          const { y } = await run1On((g, v) => g[op](v.a, v.b), { a, b });
          check(op, y, ref.broadcast(a.data, as, b.data, bs, op === 'add' ? (p, q) => p + q : (p, q) => p * q), 1e-6);
        }
      });
    }

    opCase('unary', 'unary: every activation, affine and clamp', async () => {
      const x = X([3, 50], 3);
      for (let act = 0; act <= 8; act++) {
        const o = { act, a: 0.7, b: 0.1, c: 1.5, d: -0.2 };
        const { y } = await run1On((g, v) => g.unary(v.x, o), { x });
        check(`unary act ${act}`, y, ref.unary(x.data, o), 2e-6);
      }
      const o = { act: Act.Tanh, a: 1 / 3, c: 3, lo: -1, hi: 2 };
      const { y } = await run1On((g, v) => g.unary(v.x, o), { x });
      check('unary clamp', y, ref.unary(x.data, o), 1e-6);
    });

    if (backend === 'cpu') {
      // the vector math's exp over its whole range (results down to denormals, up to 1.6e38) and
      // the activations built on it far out, value by value: each SIMD version (AVX-512, AVX2,
      // scalar under ONESTEP_SIMD=none) scales by powers of two its own way
      opCase('unary', 'unary: every activation over [-100, 88], element by element', async () => {
        const n = 603;  // rows of 201: every version's vector tail runs too
        const data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = -100 + (188 * (i + rng.int(1000) / 1000)) / n;
        const x = { shape: [3, n / 3], data };
        // below the relative check, what each activation may be off by absolutely: exp a rounding
        // of a denormal (2^-149 = 1.4e-45); the sigmoid family's exp(-x) is clamped at 88.7, so
        // far left they give ~3e-39 (times x) for values that are smaller still; GELU's left tail
        // is 1 + erf (or tanh) near -1 in float32 (~1e-7 |x|)
        // relative: float32 rounds exp's argument (|x| or 1.702 |x| up to ~170), which exp turns into
        // a relative error of ~6e-8 times the argument
        const rel = (act, v) => 2e-6 + ([1, 7, 8].includes(act) ? 1.2e-7 * Math.abs(v) : act === 4 ? 2.1e-7 * Math.abs(v) : 0);
        const floor = (act, v) => (act === 8 ? 3e-45 : [1, 4, 7].includes(act) ? 1e-36 : [2, 3].includes(act) ? 2e-7 * Math.abs(v) : 0);
        for (let act = 0; act <= 8; act++) {
          const { y } = await run1On((g, v) => g.unary(v.x, { act }), { x });
          const want = ref.unary(data, { act });
          for (let i = 0; i < n; i++) {
            const err = Math.abs(y[i] - want[i]);
            assert.ok(err <= rel(act, data[i]) * Math.abs(want[i]) + floor(act, data[i]), `unary act ${act} at x = ${data[i]}: ${y[i]}, want ${want[i]} ${seedNote}`);
          }
        }
      });
    }

    opCase(['geglu', 'concat', 'upsample', 'permute', 'reshape', 'slice', 'unary'], 'geglu, concat, upsample, permute, reshape, slice', async () => {
      const x = X([2, 3, 10]);
      check('geglu', (await run1On((g, v) => g.geglu(v.x), { x })).y, ref.geglu(x.data, x.shape), 1e-6);
      const a = X([2, 3, 4, 5]), b = X([2, 3, 4, 2]);
      check('concat', (await run1On((g, v) => g.concat(v.a, v.b), { a, b })).y, ref.concat(a.data, a.shape, b.data, b.shape), 0);
      check('upsample', (await run1On((g, v) => g.upsample(v.a, 2), { a })).y, ref.upsample(a.data, a.shape, 2), 0);
      // to a size (diffusers' upsample_size for odd latents: 2n - 1), and other sizes up and down
      const odd = X([2, 5, 3, 4]);
      for (const [h, w] of [[9, 5], [7, 4], [3, 2], [5, 3], [11, 7]]) {
        const r = await run1On((g, v) => g.resizeNearest(v.a, h, w), { a: odd });
        assert.deepStrictEqual(r.shape, [2, h, w, 4]);
        check(`resize to ${h}x${w}`, r.y, ref.resizeNearest(odd.data, odd.shape, h, w), 0);
      }
      for (const perm of [[0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 1, 0], [1, 0, 2, 3]]) {
        const r = await run1On((g, v) => g.permute(v.a, perm), { a });
        assert.deepStrictEqual(r.shape, perm.map((p) => a.shape[p]));
        check(`permute ${perm}`, r.y, ref.permute(a.data, a.shape, perm), 0);
      }
      const r = await run1On((g, v) => g.affine(g.reshape(v.a, [6, 20]), 2), { a });
      assert.deepStrictEqual(r.shape, [6, 20]);
      check('reshape', r.y, Float64Array.from(a.data, (q) => 2 * q), 0);
      for (const [axis, start, len] of [[3, 1, 3], [0, 1, 1], [1, 0, 2]]) {
        const s = await run1On((g, v) => g.slice(v.a, axis, start, len), { a });
        check(`slice ${axis}`, s.y, ref.slice(a.data, a.shape, axis, start, len), 0);
      }
    });

    opCase('avg_pool', 'avg_pool 2x2 and 3x3 (odd sizes floor)', async () => {
      for (const [xs, k] of [[[2, 8, 6, 5], 2], [[1, 7, 9, 3], 3]]) {
        const x = X(xs);
        const { y, shape } = await run1On((g, v) => g.avgPool(v.x, k), { x });
        assert.deepStrictEqual(shape, [xs[0], Math.floor(xs[1] / k), Math.floor(xs[2] / k), xs[3]]);
        check(`avg_pool ${k}`, y, ref.avgPool(x.data, xs, k), 1e-6);
      }
    });

    opCase('timestep_embedding', 'timestep_embedding (flip, shift, scale)', async () => {
      const t = { shape: [4], data: Float32Array.from([0, 1, 499.5, 999]) };
      for (const [dim, flip, shift, scale, form] of [[320, true, 0, 1, 'timestep'], [256, false, 1, 1, 'guidance'], [16, true, 1, 1000, 'timestep']]) {
        const { y } = await run1On((g, v) => g.timestepEmbedding(v.t, dim, flip, shift, scale, form), { t });
        check(`timestep_embedding ${dim}`, y, ref.timestepEmbedding(t.data, dim, flip, shift, scale, form), 1e-5);
      }
    });

    opCase(['embedding', 'select_rows'], 'embedding (F16 table) and select_rows', async () => {
      const table = weight('F16', [50, 6]);
      const idsArr = [3, 0, 49, 7, 7, 12];
      const ids = { shape: [2, 3], dtype: 'I64', data: BigInt64Array.from(idsArr.map(BigInt)) };
      const { y } = await run1On((g, v) => g.embedding(v.ids, table.t), { ids });
      const want = new Float64Array(36);
      idsArr.forEach((id, i) => { for (let c = 0; c < 6; c++) want[i * 6 + c] = table.v[id * 6 + c]; });
      check('embedding', y, want, 0);
      const x = X([2, 4, 3]);
      const index = { shape: [2], dtype: 'I64', data: BigInt64Array.from([3n, 1n]) };
      const s = await run1On((g, v) => g.selectRows(v.x, v.index), { x, index });
      check('select_rows', s.y, [...x.data.slice(9, 12), ...x.data.slice(12 + 3, 12 + 6)], 0);
    });

    opCase('linear', 'a long chain reuses the arena and stays exact', async () => {
      const x = X([4, 8, 8, 16]);
      const ws = Array.from({ length: 12 }, () => weight('F32', [16, 16], 0.25));
      const g = new GraphBuilder({ device: backend });
      let v = g.input('x', x.shape);
      const keep = [];
      for (let i = 0; i < ws.length; i++) {
        v = g.linear(v, ws[i].t, undefined, { act: Act.Tanh, residual: i % 3 === 0 ? undefined : v });
        if (i === 5) keep.push(v);
      }
      g.output('y', v);
      g.output('mid', keep[0]);
      const graph = build1(g);
      await graph.ready();
      // 12 tensors of 4 KiB-ish each; with reuse the arena holds only a few at once
      assert.ok(graph.arenaBytes <= 5 * 4 * 8 * 8 * 16 * 4, `arena ${graph.arenaBytes}`);
      const out = await graph.run({ x: x.data });
      let r = Float64Array.from(x.data);
      let mid;
      for (let i = 0; i < ws.length; i++) {
        const lin = ref.linear(r, x.shape, ws[i].v, ws[i].shape, undefined, 6, i % 3 === 0 ? undefined : r);
        r = lin;
        if (i === 5) mid = r;
      }
      check('chain', out.y.toFloat32(), r, tolFor(backend, 1e-5, true));
      check('chain mid', out.mid.toFloat32(), mid, tolFor(backend, 1e-5, true));
      // a second run gives the same result
      const again = await graph.run({ x: x.data });
      assert.deepStrictEqual(Array.from(again.y.toFloat32()), Array.from(out.y.toFloat32()));
      graph.dispose();
    });

    // x [B, ...] with out [B, ...] or [2B, ...] (guidance), with and without noise, prev and denoised
    for (const [xs, cfg, noisy] of [[[1, 4, 5, 3], false, false], [[2, 4, 3, 5], true, true], [[3, 7], false, true]]) {
      opCase('scheduler_step', `scheduler_step x${JSON.stringify(xs)}${cfg ? ', guidance' : ''}${noisy ? ', noise' : ''}`, async () => {
        const x = X(xs);
        const out = X([xs[0] * (cfg ? 2 : 1), ...xs.slice(1)]);
        const coeffs = X([8]);
        const inputs = { x, out, coeffs };
        if (noisy) inputs.noise = X(xs);
        for (const select of ['prev', 'denoised']) {
          const { y, shape } = await run1On((g, v) => g.schedulerStep(v.x, v.out, v.coeffs, v.noise, select), inputs);
          assert.deepStrictEqual(shape, xs);
          check(`scheduler_step ${select}`, y, ref.schedulerStep(x.data, out.data, coeffs.data, noisy ? inputs.noise.data : undefined, select), 1e-5);
        }
      });
    }

    it('every op of the table has a parity case', () => {
      const missing = OP_NAMES.filter((op) => !covered.has(op));
      assert.deepStrictEqual(missing, [], `ops without a parity case on ${backend}: ${missing.join(', ')}`);
    });
  });
}
