// The CUDA path without a GPU, two ways:
//  - emulated table (ONESTEP_CUDA_EMULATE=1): the addon's CUDA table runs the CPU kernels
//    (native/backend/cuda_emulator.cc), which tests the executor a GPU would run (weights uploaded
//    once and converted to fp16, the arena, CUDA-graph capture and replay, index checks);
//  - simulated kernels (ONESTEP_CUDA_EMULATE=kernels): the CUDA library's own sources, kernels
//    included, compiled for the CPU against kernels/sim (cusim) — the real launchers and kernels,
//    their indexing, tiling, shared memory, barriers, shuffles and WMMA calls, run with CUDA's
//    block and warp semantics.
// Each runs the op parity suite on device cuda, every network golden at its fp16 tolerance, and a
// pipeline whose LoRA is re-fused in place between generations. What neither can tell: speed,
// races that only real parallel hardware shows, and the hardware's own rounding.
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { fixture, fixturesDir } = require('../helpers/fixtures');
const { buildCudaSim, standIns } = require('../../scripts/build-cuda-sim');

const root = path.resolve(__dirname, '..', '..');

const modes = [
  { title: 'emulated table (CPU ops behind the CUDA table)', env: { ONESTEP_CUDA_EMULATE: '1' }, device: /emulated/ },
  { title: 'simulated kernels (the CUDA sources on cusim)', env: { ONESTEP_CUDA_EMULATE: 'kernels' }, device: /cusim/, simulated: true },
];

for (const mode of modes) {
  describe(`CUDA path without a GPU: ${mode.title}`, function () {
    this.timeout(900000);
    let env;
    const node = (args, extra = {}) =>
      spawnSync(process.execPath, args, { cwd: root, env: { ...env, ...extra }, encoding: 'utf8', timeout: 900000 });

    before(async function () {
      env = { ...process.env, ...mode.env };
      if (mode.simulated) env.ONESTEP_CUDA_LIBRARY = await buildCudaSim();
    });

    it('info() reports the device as usable', () => {
      const r = node(['-e', "const i = require('.').info(); console.log(JSON.stringify(i.backends.cuda))"]);
      assert.strictEqual(r.status, 0, r.stderr);
      const c = JSON.parse(r.stdout);
      assert.strictEqual(c.usable, true);
      assert.match(JSON.stringify(c), mode.device);
    });

    // the op parity suite, its CUDA part run (not skipped), all passing
    const parityPasses = (extraEnv = {}) => {
      const mocha = require.resolve('mocha/bin/mocha.js');
      const r = node([mocha, '--no-config', '--timeout', '120000', 'test/graph/parity.test.js'], extraEnv);
      assert.strictEqual(r.status, 0, r.stdout + r.stderr);
      const cudaPart = r.stdout.slice(r.stdout.indexOf('op parity (cuda)'));
      assert.ok(r.stdout.includes('op parity (cuda)') && !/SKIPPED/.test(cudaPart), r.stdout);
      assert.match(r.stdout, /\d+ passing/);
      assert.doesNotMatch(r.stdout, /failing|pending/);
    };

    it('the op parity suite passes on device cuda (activations stored in 16 bits: the inputs rounded so, each rounding in the tolerance)', () => parityPasses());
    it('... and with float32 activations (ONESTEP_CUDA_ACTIVATIONS=f32): every placement says F32, the tight tolerances', () =>
      parityPasses({ ONESTEP_CUDA_ACTIVATIONS: 'f32' }));

    // every case of the network golden folders passes with --device cuda (at its fp16 tolerance)
    const goldensPass = (extraEnv = {}) => {
      const folders = ['golden', 'sizes', 'controlnet'];
      const r = node(['dist/golden/cli.js', ...folders.map((f) => path.join(fixturesDir, f)), '--device', 'cuda', '--quiet'], extraEnv);
      assert.strictEqual(r.status, 0, r.stdout + r.stderr);
      const listed = folders.reduce((n, f) => n + Object.keys(JSON.parse(fs.readFileSync(fixture(f, 'index.json'), 'utf8'))).length, 0);
      assert.match(r.stdout, new RegExp(`golden: ${listed} passed, 0 failed`), r.stdout);
    };

    it('every network golden (golden/, sizes/, controlnet/) passes with --device cuda at its fp16 tolerance', () => goldensPass());

    // activations in 16 bits (docs/CUDA.md, "Activations"): a conv, a group norm, a residual add, a
    // linear layer, and a scheduler step whose latents stay float32
    const storageScript = `
      const { GraphBuilder, Act } = require('./dist/graph');
      const { addon } = require('./dist/native');
      (async () => {
        let seed = 777;
        const rand = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
        const t = (shape) => addon().tensorFromFloat32('F32', shape, rand(shape.reduce((a, b) => a * b, 1)));
        const g = new GraphBuilder({ device: 'cuda' });
        const x = g.input('x', [1, 6, 6, 8]);
        const c = g.input('c', [8]);
        const h = g.conv2d(x, t([8, 8, 3, 3]), t([8]), { padding: 1 });
        const n = g.groupNorm(h, t([8]), t([8]), 2, 1e-5, Act.Silu);
        const r = g.add(n, x);
        const o = g.linear(r, t([8, 8]), t([8]));
        g.output('eps', o);
        g.output('prev', g.schedulerStep(x, o, c, undefined, 'prev'));
        const graph = g.build();
        const out = await graph.run({ x: rand(288), c: Float32Array.from([0.9, -0.4, 0.7, 0.2, 0.1, 0, 0, 0]) });
        const storage = (await graph.placements()).map((p) => p.op + ':' + p.storage);
        // the same chain without the scheduler step: every value 16-bit (or every one float32)
        const g2 = new GraphBuilder({ device: 'cuda' });
        const x2 = g2.input('x', [1, 6, 6, 8]);
        const n2 = g2.groupNorm(g2.conv2d(x2, t([8, 8, 3, 3]), t([8]), { padding: 1 }), t([8]), t([8]), 2, 1e-5, Act.Silu);
        g2.output('y', g2.linear(g2.add(n2, x2), t([8, 8]), t([8])));
        const chain = g2.build();
        await chain.placements();  // compiled
        console.log(JSON.stringify({ eps: Array.from(out.eps.toFloat32()), prev: Array.from(out.prev.toFloat32()), storage, arena: chain.arenaBytes }));
      })().catch((e) => { console.error(e.code + ': ' + e.message); process.exit(1); });`;
    const storageRun = (extra) => {
      const r = node(['-e', storageScript], extra);
      assert.strictEqual(r.status, 0, r.stderr);
      return JSON.parse(r.stdout.trim().split('\n').pop());
    };
    const rel = (a, b) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.reduce((s, v) => s + v * v, 0));

    it('activations are stored in fp16 on the device where the kernels take it; the scheduler step keeps float32 (ONESTEP_CUDA_ACTIVATIONS=f32: all float32)', () => {
      const half = storageRun({});
      const f32 = storageRun({ ONESTEP_CUDA_ACTIVATIONS: 'f32' });
      // the library's scheduler step reads a 16-bit model output; the emulated table's refuses every 16-bit tensor
      assert.deepStrictEqual(half.storage, ['conv2d:F16', 'group_norm:F16', 'add:F16', `linear:${mode.simulated ? 'F16' : 'F32'}`, 'scheduler_step:F32']);
      assert.deepStrictEqual(f32.storage, ['conv2d:F32', 'group_norm:F32', 'add:F32', 'linear:F32', 'scheduler_step:F32']);
      // the device arena is planned with the sizes as stored (288-element values: 1152 bytes, or 576)
      assert.ok(f32.arena >= 2 * 1152 && half.arena * 2 === f32.arena, `arena ${half.arena} bytes with 16-bit storage, ${f32.arena} with float32`);
      for (const k of ['eps', 'prev']) {
        const d = rel(half[k], f32[k]);
        assert.ok(d > 0 && d < 5e-3, `${k}: fp16 storage is ${d} from float32 storage`);
      }
      const r = node(['-e', storageScript], { ONESTEP_CUDA_ACTIVATIONS: 'half' });
      assert.notStrictEqual(r.status, 0);
      assert.match(r.stderr, /ERR_ONESTEP_OPTION: ONESTEP_CUDA_ACTIVATIONS must be '16' or 'f32', got 'half'/);
    });

    if (mode.simulated) {
      it('attention picks the mma kernel for heads up to 160; ONESTEP_CUDA_ATTENTION=wmma / cublaslt change it, another value sends the node to the CPU naming it', () => {
        const script = `
          const { GraphBuilder } = require('./dist/graph');
          (async () => {
            const out = [];
            for (const D of [40, 160, 512]) {
              const g = new GraphBuilder({ device: 'cuda' });
              const q = g.input('q', [1, 70, 2 * D]);
              g.output('y', g.attention(q, q, q, 2, 1 / Math.sqrt(D)));
              const [p] = await g.build().placements();
              out.push(p.algorithm + (p.fallback ? ' (cpu: ' + p.reason + ')' : ''));
            }
            console.log(JSON.stringify(out));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const algos = (extra) => {
          const r = node(['-e', script], extra);
          assert.strictEqual(r.status, 0, r.stderr);
          return JSON.parse(r.stdout.trim().split('\n').pop());
        };
        assert.deepStrictEqual(algos({}), ['flash mma', 'flash mma', 'warp per query']);
        assert.deepStrictEqual(algos({ ONESTEP_CUDA_ATTENTION: 'wmma' }), ['flash wmma', 'warp per query', 'warp per query']);
        assert.deepStrictEqual(algos({ ONESTEP_CUDA_ATTENTION: 'cublaslt', ONESTEP_CUBLASLT: standIns.cublasLt }), ['cublaslt', 'cublaslt', 'cublaslt']);
        const bad = algos({ ONESTEP_CUDA_ATTENTION: 'fast' });
        for (const a of bad) assert.match(a, /\(cpu: the CUDA backend could not plan it: ONESTEP_CUDA_ATTENTION must be auto, cublaslt or wmma, got 'fast'\)/);
      });

      // the own GEMMs: the mma one at each tile height (ONESTEP_CUDA_GEMM=mma64 / mma128 force it;
      // auto chooses per GEMM from the multiprocessor count), and the WMMA one it replaced
      for (const mode of ['mma64', 'mma128', 'wmma']) {
        it(`the op parity suite passes with ONESTEP_CUDA_GEMM=${mode}`, () => parityPasses({ ONESTEP_CUDA_GEMM: mode }));
      }
      it('an unknown ONESTEP_CUDA_GEMM sends the GEMMs to the CPU, naming it', () => {
        const script = `
          const { GraphBuilder } = require('./dist/graph');
          const { addon } = require('./dist/native');
          (async () => {
            const g = new GraphBuilder({ device: 'cuda' });
            g.output('y', g.linear(g.input('x', [4, 16]), addon().tensorFromFloat32('F16', [8, 16], new Float32Array(128).fill(0.5))));
            const [p] = await g.build().placements();
            console.log(JSON.stringify(p));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const r = node(['-e', script], { ONESTEP_CUDA_GEMM: 'fast' });
        assert.strictEqual(r.status, 0, r.stderr);
        const p = JSON.parse(r.stdout.trim().split('\n').pop());
        assert.strictEqual(p.backend, 'cpu');
        assert.match(p.reason, /ONESTEP_CUDA_GEMM must be auto, wmma, mma64 or mma128, got 'fast'/);
      });

      it('on a GPU before sm_80 (CUSIM_CC=7.5): the parity suite passes (no mma kernel, fp16 operands for bf16 graphs) and bf16 graphs keep float32 activations', () => {
        parityPasses({ CUSIM_CC: '7.5' });
        const script = `
          const { GraphBuilder } = require('./dist/graph');
          const { addon } = require('./dist/native');
          (async () => {
            const w = addon().tensorFromFloat32('F32', [8, 8], Float32Array.from({ length: 64 }, (_, i) => Math.sin(i)));
            const storage = {};
            for (const gemmOperand of ['F16', 'BF16']) {
              const g = new GraphBuilder({ device: 'cuda', gemmOperand });
              const x = g.input('x', [4, 8]);
              g.output('y', g.add(g.linear(x, w), x));
              const graph = g.build();
              storage[gemmOperand] = (await graph.placements()).map((p) => p.op + ':' + p.storage);
            }
            console.log(JSON.stringify(storage));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const r = node(['-e', script], { CUSIM_CC: '7.5' });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.deepStrictEqual(JSON.parse(r.stdout.trim().split('\n').pop()), { F16: ['linear:F16', 'add:F16'], BF16: ['linear:F32', 'add:F32'] });
        // a malformed CUSIM_CC: cusim cannot describe its device, so CUDA is not usable, saying why
        const bad = node(['-e', "const c = require('.').info().backends.cuda; console.log(JSON.stringify([c.usable, c.reason]))"], { CUSIM_CC: 'seven' });
        const [usable, reason] = JSON.parse(bad.stdout.trim().split('\n').pop());
        assert.strictEqual(usable, false);
        assert.match(reason, /cannot read the properties of device 0: .*CUSIM_CC must be major\.minor \(e\.g\. 7\.5\), got 'seven'/);
      });
    }

    if (!mode.simulated) {
      it('a node refusing 16-bit activations gets float32 ones, its neighbours keep fp16 (ONESTEP_CUDA_EMULATE_F32)', () => {
        const f32 = storageRun({ ONESTEP_CUDA_ACTIVATIONS: 'f32' });
        const some = storageRun({ ONESTEP_CUDA_EMULATE_F32: 'group_norm' });
        // the group norm's input (the conv's output) and its output go back to float32; the add reads
        // it and writes fp16; the scheduler step now takes 16-bit latents where the table allows
        assert.deepStrictEqual(some.storage, ['conv2d:F32', 'group_norm:F32', 'add:F16', 'linear:F16', 'scheduler_step:F16']);
        for (const k of ['eps', 'prev']) assert.ok(rel(some[k], f32[k]) < 5e-3, k);
        const none = storageRun({ ONESTEP_CUDA_EMULATE_F32: '' });
        assert.deepStrictEqual(none.storage, ['conv2d:F16', 'group_norm:F16', 'add:F16', 'linear:F16', 'scheduler_step:F16']);
        for (const k of ['eps', 'prev']) assert.ok(rel(none[k], f32[k]) < 5e-3, k);
      });
    }

    // LoRA fused on the device (docs/LORA.md, "On the GPU"), read back exactly: a linear layer on
    // identity rows returns W^T, a conv on one-hot images its kernel; every weight dtype, operand
    // type, a relaid-out 3x3 kernel, partial tiles, several parts. Each is the CPU's float32 fusion
    // rounded once to the operand type (within one unit of the last place where the sums' order
    // differs); a new definition re-fuses the copy the compiled graph holds, in place.
    it('LoRA fusion on the device: the weights the graphs read are the CPU fusion rounded once; a new scale re-fuses them in place', () => {
      const script = `
        const { GraphBuilder } = require('./dist/graph');
        const { addon } = require('./dist/native');
        (async () => {
          const a = addon();
          let seed = ${(Date.now() % 100000) + 1};
          const seed0 = seed;
          const rand = (n, s = 1) => Float32Array.from({ length: n }, () => s * (((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5));
          const numel = (s) => s.reduce((x, y) => x * y, 1);
          const t = (dtype, shape, s) => a.tensorFromFloat32(dtype, shape, rand(numel(shape), s));
          const cases = [
            { shape: [70, 100], base: 'F16', lora: 'F16', ranks: [4, 20], operand: 'F16' },
            { shape: [130, 40], base: 'BF16', lora: 'F32', ranks: [1], operand: 'BF16' },
            { shape: [24, 10, 3, 3], base: 'F16', lora: 'F16', ranks: [8, 3], operand: 'F16' },
            { shape: [16, 12, 1, 1], base: 'F32', lora: 'BF16', ranks: [5], operand: 'F16' },
          ];
          const results = [];
          for (const c of cases) {
            const [N, ...rest] = c.shape;
            const K = numel(rest);
            const conv = c.shape.length === 4;
            const base = t(c.base, c.shape, 2);
            const downs = c.ranks.map((r) => t(c.lora, conv ? [r, ...rest] : [r, K], 0.5));
            const ups = c.ranks.map((r) => t(c.lora, conv ? [N, r, 1, 1] : [N, r], 0.5));
            const parts = (factors) => c.ranks.map((r, i) => ({ down: downs[i], up: ups[i], factor: factors[i] }));
            const f1 = c.ranks.map(() => rand(1, 4)[0]);
            const def = a.deferLoraFusion(base, parts(f1), 'w', 'F32');
            const g = new GraphBuilder({ device: 'cuda', gemmOperand: c.operand });
            const probe = new Float32Array(K * K);
            let y;
            if (!conv) {
              y = g.linear(g.input('x', [K, K]), def.tensor);
              for (let k = 0; k < K; k++) probe[k * K + k] = 1;
            } else {
              const [Ci, kh, kw] = rest;
              y = g.conv2d(g.input('x', [K, kh, kw, Ci]), def.tensor);
              // image b = (ci, yy, xx) in the checkpoint's order: one-hot at pixel (yy, xx), channel ci
              for (let ci = 0; ci < Ci; ci++) for (let yy = 0; yy < kh; yy++) for (let xx = 0; xx < kw; xx++)
                probe[((ci * kh + yy) * kw + xx) * K + (yy * kw + xx) * Ci + ci] = 1;
            }
            g.output('y', y);
            const graph = g.build();
            const readBack = async () => {
              const out = (await graph.run({ x: probe })).y.toFloat32();
              const w = new Float32Array(N * K);
              for (let b = 0; b < K; b++) for (let n = 0; n < N; n++) w[n * K + b] = out[b * N + n];
              return w;
            };
            const expect = (f) => a.tensorFromFloat32(c.operand, c.shape, a.fuseLora(base, parts(f), 'w', 'F32').toFloat32()).toFloat32();
            const compare = (got, want) => {
              let ulps = 0, exact = 0;
              for (let i = 0; i < want.length; i++) {
                const ulp = Math.max(Math.abs(want[i]), 1e-4) * (c.operand === 'BF16' ? 2 ** -7 : 2 ** -10);
                ulps = Math.max(ulps, Math.abs(got[i] - want[i]) / ulp);
                if (got[i] === want[i]) exact++;
              }
              return { ulps, exact: exact / want.length };
            };
            const first = compare(await readBack(), expect(f1));
            const f2 = f1.map((f) => -0.5 * f + 0.25);
            const again = a.deferLoraFusion(base, parts(f2), 'w', 'F32', def.tensor);
            const second = compare(await readBack(), expect(f2));
            // the host bytes, made on first host read, are the CPU fusion bit for bit
            const cpu = a.fuseLora(base, parts(f2), 'w', 'F32').toFloat32();
            const hostEqual = def.tensor.toFloat32().every((v, i) => v === cpu[i]);
            const third = a.deferLoraFusion(base, parts(f1), 'w', 'F32', def.tensor);
            results.push({ seed: seed0, shape: c.shape, first, second, same: again.tensor === def.tensor, hostWasRead: [again.hostWasRead, third.hostWasRead], hostEqual,
              onCpu: (await graph.placements())[0].fallback });
          }
          console.log(JSON.stringify(results));
        })().catch((e) => { console.error(e.code + ': ' + e.message); process.exit(1); });`;
      const r = node(['-e', script]);
      assert.strictEqual(r.status, 0, r.stderr);
      const results = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.strictEqual(results.length, 4);
      for (const c of results) {
        const label = JSON.stringify(c);
        assert.strictEqual(c.onCpu, false, label);
        for (const k of ['first', 'second']) assert.ok(c[k].ulps <= 1 && c[k].exact >= 0.99, `${k} fusion: ${label}`);
        assert.ok(c.same && c.hostEqual, label);
        // host bytes are only made when read: the re-fusion before the read says none were
        assert.deepStrictEqual(c.hostWasRead, [false, true], label);
      }
    });

    // a pipeline fuses its LoRA on the GPU; a scale change re-fuses the GPU copies in place (no graph
    // is rebuilt) and the image follows the CPU's; with a LoRA-read op on the CPU (emulated table
    // without linear), the host bytes are made there and a scale change rebuilds the graphs instead
    const pipelineLora = (extra) => {
      const script = `
        const { loadPipeline } = require('.');
        const { addon } = require('./dist/native');
        (async () => {
          const model = ${JSON.stringify(fixture('models', 'tiny-sd15'))};
          const lora = ${JSON.stringify(fixture('lora', 'sd15_lora_kohya_full.safetensors'))};
          const gen = async (p) => Buffer.from((await p.generate({ prompt: 'a cat', seed: 4, steps: 2, scheduler: 'lcm', guidanceScale: 1 }))[0].rgb);
          const gpu = await loadPipeline(model, { device: 'cuda' });
          const loaded = await gpu.loadLoras([{ path: lora, name: 'l' }]);
          const cpu = await loadPipeline(model, { device: 'cpu', loras: [{ path: lora, name: 'l' }] });
          const a = await gen(gpu);
          const free = addon().cudaMemory().free;
          const rescaled = await gpu.setLoraScales({ l: 0.25 });
          const b = await gen(gpu);
          await cpu.setLoraScales({ l: 0.25 });
          const c = await gen(cpu);
          await gpu.setLoraScales({ l: 1 });
          const d = await gen(gpu);
          let diff = 0;
          for (let i = 0; i < b.length; i++) diff = Math.max(diff, Math.abs(b[i] - c[i]));
          await gpu.unloadLoras();
          const plain = await loadPipeline(model, { device: 'cuda' });
          const unloaded = (await gen(gpu)).equals(await gen(plain));
          console.log(JSON.stringify({ changed: !a.equals(b), back: a.equals(d), maxDiffVsCpu: diff, unloaded, free,
            fusedOn: loaded.fusedOn, rebuiltAtLoad: loaded.rebuilt, rebuiltAtScale: rescaled.rebuilt }));
          gpu.dispose(); cpu.dispose(); plain.dispose();
        })().catch((e) => { console.error(e); process.exit(1); });`;
      const r = node(['-e', script], extra);
      assert.strictEqual(r.status, 0, r.stderr);
      const o = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.ok(o.changed, 'scale 0.25 changes the image');
      assert.ok(o.back, 'back at scale 1: the same image as before');
      assert.ok(o.maxDiffVsCpu <= 8, `fp16 GPU weights vs the CPU: max pixel difference ${o.maxDiffVsCpu}`);
      assert.ok(o.unloaded, 'unloaded: the image of a pipeline that never had the LoRA');
      assert.deepStrictEqual(o.fusedOn, { unet: 'gpu' });
      assert.deepStrictEqual(o.rebuiltAtLoad, ['unet']);
      return o;
    };

    it('a pipeline on device cuda fuses its LoRA on the GPU: scale changes re-fuse the GPU copies in place, no graph rebuilt', () => {
      assert.deepStrictEqual(pipelineLora({}).rebuiltAtScale, []);
    });

    if (mode.simulated) {
      // cusim counts device memory: without the bases kept, the fused weights' bases are not held
      it('... ONESTEP_LORA_BASE=reload: the same, with the bases uploaded for each fusion and not kept (less GPU memory held)', () => {
        const keep = pipelineLora({});
        const reload = pipelineLora({ ONESTEP_LORA_BASE: 'reload' });
        assert.deepStrictEqual(reload.rebuiltAtScale, []);
        assert.ok(reload.free > keep.free, `free GPU memory: ${reload.free} bytes with reload, ${keep.free} with the bases kept`);
        const r = node(['-e', "require('.').loadPipeline(process.argv[1], { device: 'cuda', loras: [{ path: process.argv[2] }] }).then((p) => p.generate({ prompt: 'a', steps: 1 })).catch((e) => { console.error(e.code + ': ' + e.message); process.exit(3); })",
          fixture('models', 'tiny-sd15'), fixture('lora', 'sd15_lora_kohya_full.safetensors')], { ONESTEP_LORA_BASE: 'later' });
        assert.strictEqual(r.status, 3, r.stdout + r.stderr);
        assert.match(r.stderr, /ERR_ONESTEP_OPTION: .*ONESTEP_LORA_BASE must be 'keep' or 'reload', got 'later'/);
      });
    }

    if (!mode.simulated) {
      it('... and where a node reading a LoRA weight runs on the CPU, its host bytes are made there and a scale change rebuilds the graphs', () => {
        assert.deepStrictEqual(pipelineLora({ ONESTEP_CUDA_EMULATE_WITHOUT: 'linear' }).rebuiltAtScale, ['unet']);
      });
    }

    if (!mode.simulated) {
      // per-node fallback: the table is told to leave an op out (supports_node says no); its nodes
      // run on the CPU backend with the copies planned, the goldens still pass, and it is reported
      const without = { ONESTEP_CUDA_EMULATE_WITHOUT: 'group_norm' };

      it('an op left out of the table runs on the CPU: every network golden still passes', () => goldensPass(without));

      it('... the same image as with the whole table, and onProgress, the warnings and placements() say which nodes fell back', () => {
        const script = `
          const { loadPipeline } = require('.');
          (async () => {
            const model = ${JSON.stringify(fixture('models', 'tiny-sd15'))};
            const pipe = await loadPipeline(model, { device: 'cuda' });
            const events = [], warned = [];
            const [img] = await pipe.generate({ prompt: 'a cat', seed: 7, steps: 2, scheduler: 'lcm', guidanceScale: 1,
              onProgress: (e) => events.push(e), onWarning: (w) => warned.push(w) });
            const last = events[events.length - 1];
            console.log(JSON.stringify({ rgb: Buffer.from(img.rgb).toString('base64'), fallbacks: last.fallbacks || [], warnings: img.warnings, warned }));
            await pipe.dispose();
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const run = (extra) => {
          const r = node(['-e', script], extra);
          assert.strictEqual(r.status, 0, r.stderr);
          return JSON.parse(r.stdout.trim().split('\n').pop());
        };
        // float32 activations: a fallback changes which values the executor stores in 16 bits (those
        // a CPU node touches stay float32), so only then are the bytes comparable
        const whole = run({ ONESTEP_CUDA_ACTIVATIONS: 'f32' });
        const part = run({ ...without, ONESTEP_CUDA_ACTIVATIONS: 'f32' });
        assert.strictEqual(run(without).warnings.length, 2);
        assert.deepStrictEqual(whole.fallbacks, []);
        assert.deepStrictEqual(whole.warnings, []);
        // the emulated table runs the CPU kernels too: the same bytes, whichever side ran group_norm
        assert.strictEqual(part.rgb, whole.rgb);
        const graphs = part.fallbacks.map((f) => f.graph.split(' ')[0]).sort();
        assert.deepStrictEqual(graphs, ['unet', 'vae'], JSON.stringify(part.fallbacks));
        for (const f of part.fallbacks) {
          assert.strictEqual(f.op, 'group_norm');
          assert.ok(f.nodes > 0);
          assert.match(f.reason, /left out of the emulated table/);
        }
        assert.strictEqual(part.warnings.length, 2, part.warnings.join('\n'));
        assert.deepStrictEqual(part.warned, part.warnings);
        assert.match(part.warnings[0], /\d+ group_norm nodes ran on the CPU \(group_norm is left out/);
      });

      it('the op parity suite passes with ops left out (their nodes placed on the CPU)', () =>
        parityPasses({ ONESTEP_CUDA_EMULATE_WITHOUT: 'linear,attention,group_norm,add,scheduler_step' }));

      it('placements() name the backend of each node; an unknown op in ONESTEP_CUDA_EMULATE_WITHOUT makes CUDA unusable, naming it', () => {
        const script = `
          const { GraphBuilder } = require('./dist/graph');
          const { addon } = require('./dist/native');
          (async () => {
            const g = new GraphBuilder({ device: 'cuda' });
            const x = g.input('x', [1, 2, 2, 4]);
            const one = addon().tensorFromFloat32('F32', [4], new Float32Array(4).fill(1));
            const zero = addon().tensorFromFloat32('F32', [4], new Float32Array(4));
            g.output('y', g.unary(g.groupNorm(x, one, zero, 2, 1e-5), { a: 2 }));
            const graph = g.build();
            const out = await graph.run({ x: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]) });
            const p = await graph.placements();
            console.log(JSON.stringify({ y: Array.from(out.y.toFloat32()).slice(0, 4), p }));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const r = node(['-e', script], without);
        assert.strictEqual(r.status, 0, r.stderr);
        const o = JSON.parse(r.stdout.trim().split('\n').pop());
        assert.deepStrictEqual(o.p.map((q) => [q.op, q.backend, q.fallback]), [['group_norm', 'cpu', true], ['unary', 'cuda', false]]);
        assert.ok(o.y.every(Number.isFinite) && o.y.some((v) => v !== 0));
        const bad = node(['-e', "console.log(JSON.stringify(require('.').info().backends.cuda))"], { ONESTEP_CUDA_EMULATE_WITHOUT: 'group_nrom' });
        const c = JSON.parse(bad.stdout);
        assert.strictEqual(c.usable, false);
        assert.match(c.reason, /no op named 'group_nrom'/);
      });
    }

    if (mode.simulated) {
      // the vendor math libraries, dlopen()ed by the CUDA library: cusim's stand-ins
      // (kernels/sim/*_sim.cc, built from NVIDIA's documented semantics) found through ONESTEP_CUBLASLT /
      // ONESTEP_CUDNN like real ones
      describe('cuBLASLt and cuDNN loaded at run time (cusim stand-ins)', () => {
        const libs = {
          cuBLASLt: { env: 'ONESTEP_CUBLASLT', good: 'cublasLt', version: '13.1.0', ops: 'linear, 1x1 conv2d, attention with heads above 64' },
          cuDNN: { env: 'ONESTEP_CUDNN', good: 'cudnn', version: '9.8.0', ops: 'conv2d' },
        };
        const withLibs = (lt, dnn) => ({ ONESTEP_CUBLASLT: lt ? standIns.cublasLt : 'none', ONESTEP_CUDNN: dnn ? standIns.cudnn : 'none' });
        // linear, 1x1 conv, 3x3 conv, a strided conv with the VAE encoder's asymmetric padding, bf16 linear
        const gemmScript = `
          const { GraphBuilder, Act } = require('./dist/graph');
          const { addon } = require('./dist/native');
          const { info, formatInfo } = require('.');
          (async () => {
            let seed = 12345;
            const rand = (n) => Float32Array.from({ length: n }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5);
            const t = (dtype, shape) => addon().tensorFromFloat32(dtype, shape, rand(shape.reduce((a, b) => a * b, 1)));
            const g = new GraphBuilder({ device: 'cuda' });
            const x = g.input('x', [2, 6, 5, 24]);
            const r = g.input('r', [2, 6, 5, 40]);
            const h = g.linear(x, t('F16', [40, 24]), t('F32', [40]), { act: Act.Silu, residual: r });
            const p = g.conv2d(h, t('F32', [32, 40, 1, 1]), t('F32', [32]));
            const c = g.conv2d(p, t('F32', [16, 32, 3, 3]), t('F32', [16]), { padding: 1, act: Act.Silu, residual: g.conv2d(p, t('F32', [16, 32, 1, 1])) });
            const d = g.conv2d(c, t('F32', [16, 16, 3, 3]), t('F32', [16]), { stride: 2, padding: [0, 0, 1, 1] });
            g.output('y', g.linear(d, t('BF16', [8, 16])));
            const graph = g.build();
            const out = await graph.run({ x: rand(2 * 6 * 5 * 24), r: rand(2 * 6 * 5 * 40) });
            const placements = (await graph.placements()).map((q) => q.backend + ':' + q.algorithm);
            console.log(JSON.stringify({ y: Array.from(out.y.toFloat32()), placements, libs: info().backends.cuda.mathLibraries, text: formatInfo(info()) }));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const gemms = (extra) => {
          const r = node(['-e', gemmScript], extra);
          assert.strictEqual(r.status, 0, r.stderr);
          return JSON.parse(r.stdout.trim().split('\n').pop());
        };
        const relL2 = (a, b) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0) / a.reduce((s, v) => s + v * v, 0));
        // the own GEMM: the pipelined mma one (every K and channel count here is a multiple of 8)
        const own = ['cuda:mma', 'cuda:mma', 'cuda:mma', 'cuda:implicit-gemm mma', 'cuda:implicit-gemm mma', 'cuda:mma'];
        let none;
        before(() => {
          none = gemms(withLibs(false, false));
        });

        it('without them the own kernels run, and info() says why each is not used', () => {
          assert.deepStrictEqual(none.placements, own);
          assert.deepStrictEqual(none.libs.map((m) => [m.name, m.loaded]), [['cuBLASLt', false], ['cuDNN', false]]);
          assert.match(none.libs[0].reason, /turned off \(ONESTEP_CUBLASLT=none\)/);
          assert.match(none.libs[1].reason, /turned off \(ONESTEP_CUDNN=none\)/);
          assert.ok(none.y.every(Number.isFinite) && none.y.some((v) => v !== 0));
        });

        // [cuBLASLt, cuDNN] loaded -> the algorithm of each node; the distance from the own kernels
        for (const [lt, dnn, placements, tol] of [
          // cuBLASLt rounds its fp16 D before an activation applied after it (the own kernel rounds once)
          [true, false, ['cuda:cublaslt', 'cuda:cublaslt', 'cuda:cublaslt', 'cuda:implicit-gemm mma', 'cuda:implicit-gemm mma', 'cuda:cublaslt'], 2e-3],
          [false, true, ['cuda:mma', 'cuda:cudnn', 'cuda:cudnn', 'cuda:cudnn', 'cuda:cudnn', 'cuda:mma'], 3e-3],
          [true, true, ['cuda:cublaslt', 'cuda:cublaslt', 'cuda:cublaslt', 'cuda:cudnn', 'cuda:cudnn', 'cuda:cublaslt'], 3e-3],
        ]) {
          const which = [lt && 'cuBLASLt', dnn && 'cuDNN'].filter(Boolean);
          it(`with ${which.join(' and ')}: info() names each library, its version and its ops; the nodes it takes run on it, the same numbers`, () => {
            const o = gemms(withLibs(lt, dnn));
            for (const name of which) {
              const m = o.libs.find((q) => q.name === name);
              assert.deepStrictEqual(m, { name, loaded: true, version: libs[name].version, path: standIns[libs[name].good], ops: libs[name].ops });
              assert.ok(o.text.includes(`${name} ${libs[name].version} (${standIns[libs[name].good]}): ${libs[name].ops}`), o.text);
            }
            assert.deepStrictEqual(o.placements, placements);
            // all round operands to fp16 / bf16 and accumulate in fp32, and store activations in fp16
            const d = relL2(o.y, none.y);
            assert.ok(d < tol, `${which.join(' + ')} and the own kernels differ by ${d}`);
          });
        }

        for (const [key, env, why] of [
          ['cublasLtOtherVersion', 'ONESTEP_CUBLASLT', /version 12\.8\.0, but this build needs cuBLASLt 13\.x/],
          ['cublasLtBroken', 'ONESTEP_CUBLASLT', /it has no cublasLtMatmul/],
          ['cudnnOtherCuda', 'ONESTEP_CUDNN', /cuDNN 9\.8\.0 was built for CUDA 12\.8, but this build runs CUDA 13/],
          ['cudnnOtherVersion', 'ONESTEP_CUDNN', /version 10\.0\.0, but onestep uses cuDNN 9/],
          ['cudnnBroken', 'ONESTEP_CUDNN', /it has no cudnnConvolutionForward/],
          ['missing', 'ONESTEP_CUBLASLT', /cannot open shared object file/],
          ['missing', 'ONESTEP_CUDNN', /cannot open shared object file/],
        ]) {
          const name = env === 'ONESTEP_CUDNN' ? 'cuDNN' : 'cuBLASLt';
          it(`${name}: ${key === 'missing' ? 'a missing library' : key}: a warning in info() naming why, and the own kernels run`, () => {
            const file = standIns[key] || path.join(root, 'build', 'no-such-library.so');
            const o = gemms({ ...withLibs(false, false), [env]: file });
            const m = o.libs.find((q) => q.name === name);
            assert.strictEqual(m.loaded, false);
            assert.match(m.reason, why);
            assert.ok(m.reason.startsWith(`${env}=${file} is not usable`), m.reason);
            assert.match(o.text, new RegExp(`warning: ${name} not used, onestep's own kernels run instead: `));
            assert.deepStrictEqual(o.placements, own);
            assert.deepStrictEqual(o.y, none.y);
          });
        }

        it('the op parity suite passes with both (linear, 1x1 conv2d and large heads placed on cuBLASLt, the other convolutions it takes on cuDNN)', () =>
          parityPasses(withLibs(true, true)));
        it('... and with cuDNN alone (1x1 convolutions on it too)', () => parityPasses(withLibs(false, true)));
        it('... and with ONESTEP_CUDA_ATTENTION=cublaslt (heads of 64 and below on cuBLASLt too)', () =>
          parityPasses({ ...withLibs(true, false), ONESTEP_CUDA_ATTENTION: 'cublaslt' }));
        it('every network golden passes with both at its fp16 tolerance', () => goldensPass(withLibs(true, true)));
      });

      it('GPU out-of-memory is a typed error, and the process carries on on the CPU', () => {
        const script = `
          const { loadPipeline } = require('.');
          (async () => {
            const model = ${JSON.stringify(fixture('models', 'tiny-sd15'))};
            const opts = { prompt: 'a cat', seed: 1, steps: 1, scheduler: 'lcm', guidanceScale: 1 };
            let code = null, message = '';
            try {
              const p = await loadPipeline(model, { device: 'cuda' });
              await p.generate(opts);
              p.dispose();
            } catch (e) { code = e.code; message = e.message; }
            const cpu = await loadPipeline(model, { device: 'cpu' });
            const img = (await cpu.generate(opts))[0];
            cpu.dispose();
            console.log(JSON.stringify({ code, message, cpuPixels: img.rgb.length }));
          })().catch((e) => { console.error(e); process.exit(1); });`;
        const r = node(['-e', script], { ONESTEP_CUDA_SIM_MEMORY: String(256 * 1024) });
        assert.strictEqual(r.status, 0, r.stderr);
        const o = JSON.parse(r.stdout.trim().split('\n').pop());
        assert.strictEqual(o.code, 'ERR_ONESTEP_OUT_OF_MEMORY', o.message);
        assert.match(o.message, /out of memory: \d+ bytes requested/);
        assert.ok(o.cpuPixels > 0);
      });
    }
  });
}
