// The pipeline API: seeds, progress, abort, the queue, img2img from a PNG, defaults per family,
// typed errors. (The pipeline goldens check the numbers against diffusers.)
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PNG } = require('pngjs');
const { loadPipeline, TorchGenerator, AbortError, ArgumentError, DeviceError, DisposedError } = require('../..');
const { fixture } = require('../helpers/fixtures');

const model = (m) => fixture('models', m);

describe('pipelines', function () {
  this.timeout(120000);
  let sd21, lcm, sdxl, dir;
  before(async () => {
    sd21 = await loadPipeline(model('tiny-sd21'));
    lcm = await loadPipeline(model('tiny-lcm'));
    sdxl = await loadPipeline(model('tiny-sdxl'));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-pipe-'));
  });
  after(() => {
    for (const p of [sd21, lcm, sdxl]) p.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('picks each family\'s recipe from its checkpoint', () => {
    assert.deepStrictEqual([sd21.family, sd21.kind, sd21.defaults.steps, sd21.defaults.guidanceScale], ['sd', 'standard', 1, 0]); // SD-Turbo style
    assert.deepStrictEqual([lcm.kind, lcm.defaults.steps, lcm.defaults.scheduler], ['lcm', 4, 'lcm']);
    assert.deepStrictEqual([sdxl.family, sdxl.defaults.steps], ['sdxl', 1]);
  });

  it('a seed gives the latents torch.Generator(seed) draws, and the same image every time', async () => {
    let init;
    const a = await sd21.generate({ prompt: 'a fox', seed: 1234, trace: (n, d) => n === 'latents_init' && (init = d) });
    assert.deepStrictEqual(Array.from(init), Array.from(new TorchGenerator(1234).randn([1, 4, 8, 8])));
    const b = await sd21.generate({ prompt: 'a fox', seed: 1234 });
    const c = await sd21.generate({ prompt: 'a fox', seed: 1235 });
    assert.ok(Buffer.from(a[0].rgb).equals(Buffer.from(b[0].rgb)));
    assert.ok(!Buffer.from(a[0].rgb).equals(Buffer.from(c[0].rgb)));
  });

  it('writes a valid PNG holding the RGB bytes', async () => {
    const [img] = await lcm.generate({ prompt: 'a red barn', seed: 7, steps: 2 });
    const file = path.join(dir, 'barn.png');
    await img.save(file);
    const png = PNG.sync.read(fs.readFileSync(file));
    assert.deepStrictEqual([png.width, png.height], [img.width, img.height]);
    for (let i = 0; i < img.width * img.height; i++) for (let c = 0; c < 3; c++) assert.strictEqual(png.data[i * 4 + c], img.rgb[i * 3 + c]);
  });

  it('lowMemory drops each stage\'s graphs once it has run, and changes no image', async () => {
    await assert.rejects(loadPipeline(model('tiny-sd21'), { lowMemory: 'yes' }), (e) => e instanceof ArgumentError && /lowMemory must be true or false/.test(e.message));
    const graphsOf = (p) => ({
      text: Object.values(p.parts.conditioner.encoders()).reduce((n, e) => n + e.graphs.size, 0),
      unet: p.parts.unet.graphs.size + p.stepGraphs.size,
      vae: p.parts.decoder.model.graphs.size,
    });
    const [src] = await sd21.generate({ prompt: 'a fox', seed: 1 });
    const file = path.join(dir, 'low-src.png');
    await src.save(file);
    const cases = [
      [lcm, model('tiny-lcm'), { prompt: 'a red barn', seed: 7, steps: 2 }],
      [sdxl, model('tiny-sdxl'), { prompt: 'a fox', seed: 3 }],
      [sd21, model('tiny-sd21'), { prompt: 'a fox in snow', seed: 2, image: file, strength: 0.5, steps: 2 }],
    ];
    for (const [kept, dirOf, opts] of cases) {
      const low = await loadPipeline(dirOf, { lowMemory: true });
      try {
        const seen = [];
        for (let round = 0; round < 2; round++) {
          const [want] = await kept.generate(opts);
          const [got] = await low.generate({ ...opts, onProgress: (e) => seen.push([e.stage, graphsOf(low)]) });
          assert.ok(Buffer.from(got.rgb).equals(Buffer.from(want.rgb)), `${dirOf} round ${round}: the image differs with lowMemory`);
          assert.deepStrictEqual(graphsOf(low), { text: 0, unet: 0, vae: 0 }, `${dirOf}: graphs left after generate()`);
          assert.ok(graphsOf(kept).unet > 0, 'the default pipeline keeps its graphs');
        }
        // while the UNet steps, the text encoders' graphs are gone; while decoding, the UNet's too
        const steps = seen.filter(([st]) => st === 'denoise');
        const decode = seen.filter(([st]) => st === 'decode');
        assert.ok(steps.length > 0 && decode.length > 0, JSON.stringify(seen));
        for (const [, g] of steps) assert.strictEqual(g.text, 0, JSON.stringify(seen));
        for (const [, g] of decode) assert.deepStrictEqual([g.text, g.unet], [0, 0], JSON.stringify(seen));
      } finally {
        low.dispose();
      }
    }
  });

  it('img2img from a PNG file, with latents returned', async () => {
    const [src] = await sd21.generate({ prompt: 'a fox', seed: 1 });
    const file = path.join(dir, 'src.png');
    await src.save(file);
    const out = await sd21.generate({ prompt: 'a fox in snow', seed: 2, image: file, strength: 0.5, steps: 2, returnLatents: true });
    assert.strictEqual(out[0].latents.length, 4 * 8 * 8);
    await assert.rejects(sd21.generate({ prompt: 'x', image: file, strength: 0.5, steps: 1 }), (e) => e instanceof ArgumentError && /no step/.test(e.message));
  });

  it('img2img with the recipe defaults (Turbo: 1 step, strength 0.5) runs the fewest steps that leave one to run', async () => {
    const [src] = await sd21.generate({ prompt: 'a fox', seed: 1 });
    const png = src.png();
    const got = {};
    const [out] = await sd21.generate({ prompt: 'a fox in snow', seed: 2, image: png, trace: (n, d) => (got[n] = d) });
    assert.deepStrictEqual([out.width, out.height], [64, 64]);
    assert.deepStrictEqual(Array.from(got['plan.timesteps']), [499], '2 steps at strength 0.5: the last one runs');
    got['plan.timesteps'] = undefined;
    await sd21.generate({ prompt: 'x', seed: 2, image: png, strength: 0.25, trace: (n, d) => (got[n] = d) });
    assert.strictEqual(got['plan.timesteps'].length, 1, '4 steps at 0.25');
    // asked for explicitly, a count that leaves nothing says which to pass
    await assert.rejects(sd21.generate({ prompt: 'x', image: png, steps: 1 }), (e) => e instanceof ArgumentError && /steps 1 x strength 0.5 leaves no step to run.*pass steps 2 or more/.test(e.message));
  });

  it('img2img resizes an input of another size as diffusers does (Lanczos), or refuses it when asked', async () => {
    const { PNG: P } = require('pngjs');
    const png = new P({ width: 100, height: 70 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 37) % 251;
    const bytes = P.sync.write(png);
    // no size given: the image's, rounded down to multiples of 8
    const [a] = await sd21.generate({ prompt: 'x', seed: 3, image: bytes });
    assert.deepStrictEqual([a.width, a.height], [96, 64]);
    const [b] = await sd21.generate({ prompt: 'x', seed: 3, image: bytes, width: 64, height: 64 });
    assert.deepStrictEqual([b.width, b.height], [64, 64]);
    await assert.rejects(sd21.generate({ prompt: 'x', image: bytes, resizeImage: false }), (e) => e instanceof ArgumentError && /100x70, the output 96x64/.test(e.message));
    // a truncated or corrupt PNG is named as such
    await assert.rejects(sd21.generate({ prompt: 'x', image: bytes.subarray(0, bytes.length - 30) }), (e) => e instanceof ArgumentError && /truncated PNG/.test(e.message));
    await assert.rejects(sd21.generate({ prompt: 'x', image: Buffer.from('not an image at all') }), (e) => e instanceof ArgumentError && /not a PNG/.test(e.message));
  });

  it('reports progress per step and aborts between steps with an AbortError', async () => {
    const events = [];
    await lcm.generate({ prompt: 'x', seed: 1, onProgress: (e) => events.push(`${e.stage}:${e.step}/${e.steps}`) });
    assert.deepStrictEqual(events, ['encode:0/1', 'denoise:0/4', 'denoise:1/4', 'denoise:2/4', 'denoise:3/4', 'denoise:4/4', 'decode:0/1', 'decode:1/1']);
    const ac = new AbortController();
    await assert.rejects(
      lcm.generate({ prompt: 'x', seed: 1, signal: ac.signal, onProgress: (e) => e.stage === 'denoise' && e.step === 1 && ac.abort() }),
      (e) => e instanceof AbortError && e.name === 'AbortError' && e.code === 'ERR_ONESTEP_ABORTED',
    );
    // the signal's reason reaches the error as its cause, as fetch does
    const why = new Error('the user left');
    const ac2 = new AbortController();
    await assert.rejects(
      lcm.generate({ prompt: 'x', seed: 1, signal: ac2.signal, onProgress: (e) => e.stage === 'denoise' && ac2.abort(why) }),
      (e) => e instanceof AbortError && e.cause === why,
    );
    // the pipeline still works afterwards
    assert.strictEqual((await lcm.generate({ prompt: 'x', seed: 1, steps: 1 })).length, 1);
  });

  it('queues concurrent calls on one pipeline; each gets its own result', async () => {
    const seeds = [1, 2, 3, 4];
    const serial = [];
    for (const seed of seeds) serial.push(Buffer.from((await sdxl.generate({ prompt: 'a fox', seed }))[0].rgb));
    const parallel = await Promise.all(seeds.map((seed) => sdxl.generate({ prompt: 'a fox', seed })));
    parallel.forEach((r, i) => assert.ok(Buffer.from(r[0].rgb).equals(serial[i]), `seed ${seeds[i]}`));
  });

  it('SDXL micro-conditioning defaults to the output size, and can be set', async () => {
    const got = {};
    await sdxl.generate({ prompt: 'x', seed: 1, guidanceScale: 2, trace: (n, d) => (got[n] = d) });
    assert.deepStrictEqual(Array.from(got.add_time_ids), [64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64]);
    assert.ok(got.prompt_embeds.subarray(0, 77 * 20).every((v) => v === 0), 'no negative prompt: zero negative embeddings (force_zeros_for_empty_prompt)');
    await sdxl.generate({ prompt: 'x', seed: 1, originalSize: [128, 96], cropsCoordsTopLeft: [4, 8], trace: (n, d) => (got[n] = d) });
    assert.deepStrictEqual(Array.from(got.add_time_ids), [128, 96, 4, 8, 64, 64]);
    // negative rows under guidance: their own ids only with both negative sizes (as diffusers)
    await sdxl.generate({ prompt: 'x', seed: 1, guidanceScale: 2, negativeOriginalSize: [32, 48], negativeTargetSize: [40, 40], targetSize: [64, 32], trace: (n, d) => (got[n] = d) });
    assert.deepStrictEqual(Array.from(got.add_time_ids), [32, 48, 0, 0, 40, 40, 64, 64, 0, 0, 64, 32]);
    await sdxl.generate({ prompt: 'x', seed: 1, guidanceScale: 2, negativeOriginalSize: [32, 48], trace: (n, d) => (got[n] = d) });
    assert.deepStrictEqual(Array.from(got.add_time_ids), [64, 64, 0, 0, 64, 64, 64, 64, 0, 0, 64, 64]);
  });

  it('batches prompts and images per prompt', async () => {
    const imgs = await lcm.generate({ prompt: ['a', 'b'], batchSize: 2, seed: 5, steps: 1 });
    assert.strictEqual(imgs.length, 4);
  });

  it('refuses bad arguments with typed errors', async () => {
    const bad = [
      [{ prompt: 'x', width: 60 }, /width must be a multiple of 8/],
      [{ prompt: 'x', originalSize: [64] }, /originalSize must be two/],
      [{ prompt: '', height: 12 }, /height/],
      [{ prompt: 42 }, /prompt/],
      [{ prompt: [] }, /prompt/],
      [{ prompt: 'x', batchSize: 0 }, /batchSize/],
      [{ prompt: 'x', guidanceScale: -1 }, /guidanceScale/],
      [{ prompt: 'x', strength: 0.5 }, /needs an image/],
      [{ prompt: 'x', steps: 0 }, /steps/],
      [{ prompt: 'x', scheduler: 'heun' }, /unknown scheduler/],
      [{ prompt: 'x', latents: new Float32Array(3) }, /latents must hold 256/],
      [{ prompt: 'x', image: '/no/such.png' }, /not found/],
      [{ prompt: 'x', negativePrompt: ['a', 'b'], guidanceScale: 3 }, /2 negative prompts for 1/],
    ];
    for (const [opts, msg] of bad) await assert.rejects(sd21.generate(opts), (e) => e.code && e.code.startsWith('ERR_ONESTEP_') && msg.test(e.message), JSON.stringify(opts));
  });

  it('pipelineClass runs a checkpoint as another diffusers pipeline class of its family, else a typed error', async () => {
    await assert.rejects(loadPipeline(model('tiny-sd21'), { pipelineClass: 'NoSuchPipeline' }), (e) => e instanceof ArgumentError && /NoSuchPipeline.*not supported/.test(e.message));
    await assert.rejects(loadPipeline(model('tiny-sd21'), { pipelineClass: 'StableDiffusionXLPipeline' }), (e) => e instanceof ArgumentError && /for SDXL models/.test(e.message));
    await assert.rejects(loadPipeline(model('tiny-sd21'), { pipelineClass: 'constructor' }), (e) => e instanceof ArgumentError);
    const asSd = await loadPipeline(model('tiny-lcm'), { pipelineClass: 'StableDiffusionPipeline' });
    assert.strictEqual(asSd.kind, 'standard');
    await asSd.dispose();
  });

  it("device 'cuda' is a typed error here, and bad folders are named", async () => {
    await assert.rejects(loadPipeline(model('tiny-sd21'), { device: 'cuda' }), (e) => e instanceof DeviceError);
    await assert.rejects(loadPipeline(path.join(dir, 'nope')), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND');
    await assert.rejects(loadPipeline(model('tiny-taesd')), (e) => e.code === 'ERR_ONESTEP_FILE_NOT_FOUND' && /model_index\.json/.test(e.message));
  });

  describe("precision 'bf16'", () => {
    const { addon } = require('../../dist/native');
    let kernel;
    before(() => {
      // this CPU's bf16 kernel, or the portable one (the same arithmetic) where it has none
      kernel = addon().gemmInfo().bf16Kernel;
      if (!kernel) assert.ok(addon().gemmSelectBf16('generic'));
    });
    after(() => addon().gemmSelectBf16('auto'));

    it('generates the fp32 image within bf16 rounding, records the precision, and keeps the seed', async () => {
      const bf = await loadPipeline(model('tiny-sd21'), { precision: 'bf16' });
      try {
        assert.strictEqual(bf.precision, 'bf16');
        assert.strictEqual(sd21.precision, 'fp32');
        let initBf, initFp;
        const [a] = await sd21.generate({ prompt: 'a fox', seed: 99, trace: (n, d) => n === 'latents_init' && (initFp = d) });
        const [b] = await bf.generate({ prompt: 'a fox', seed: 99, trace: (n, d) => n === 'latents_init' && (initBf = d) });
        assert.deepStrictEqual(Array.from(initBf), Array.from(initFp));
        assert.ok(!Buffer.from(a.rgb).equals(Buffer.from(b.rgb)), 'bf16 operands change the image slightly');
        let sum = 0;
        for (let i = 0; i < a.rgb.length; i++) sum += Math.abs(a.rgb[i] - b.rgb[i]);
        assert.ok(sum / a.rgb.length < 2, `mean |difference| ${(sum / a.rgb.length).toFixed(2)} of 255`);
        assert.strictEqual(b.params.precision, 'bf16');
        assert.strictEqual(a.params.precision, undefined);
        const [c] = await bf.generate({ prompt: 'a fox', seed: 99 });
        assert.ok(Buffer.from(b.rgb).equals(Buffer.from(c.rgb)), 'deterministic');
      } finally {
        bf.dispose();
      }
    });

    it('a bad precision, or bf16 on a CPU without it, is refused before anything loads', async () => {
      await assert.rejects(loadPipeline(model('tiny-sd21'), { precision: 'fp16' }), (e) => e instanceof ArgumentError && /precision must be 'fp32' or 'bf16', got "fp16"/.test(e.message));
      assert.ok(addon().gemmSelectBf16('none'));
      try {
        await assert.rejects(loadPipeline(path.join(dir, 'nope'), { precision: 'bf16' }), (e) => e instanceof DeviceError && /AVX512_BF16 nor AMX-BF16/.test(e.message));
      } finally {
        addon().gemmSelectBf16(kernel || 'generic');
      }
    });
  });

  describe('dispose()', () => {
    const fresh = () => loadPipeline(model('tiny-lcm'));

    it('while a generation runs: it is aborted at its next step (an AbortError caused by a DisposedError), queued calls reject, memory is freed once', async () => {
      const p = await fresh();
      let disposed;
      const running = p.generate({ prompt: 'x', seed: 1, steps: 4, onProgress: (e) => e.stage === 'denoise' && e.step === 1 && !disposed && (disposed = p.dispose()) });
      const queued = p.generate({ prompt: 'y', seed: 2, steps: 1 });
      const lora = p.loadLoras([{ path: fixture('lora', 'sd15_lora_kohya_full.safetensors') }]);
      await assert.rejects(running, (e) => e instanceof AbortError && e.cause instanceof DisposedError && /disposed/.test(e.message));
      await assert.rejects(queued, (e) => e instanceof DisposedError && e.code === 'ERR_ONESTEP_DISPOSED' && /generate: the pipeline was disposed before this call started/.test(e.message));
      await assert.rejects(lora, (e) => e instanceof DisposedError);
      assert.ok(disposed instanceof Promise);
      await disposed;
      assert.strictEqual(p.dispose(), disposed, 'a second dispose() is the same, nothing freed twice');
    });

    it('from inside onProgress of the last stage: the generation stops before decoding', async () => {
      const p = await fresh();
      const stages = [];
      await assert.rejects(
        p.generate({ prompt: 'x', seed: 1, steps: 2, onProgress: (e) => (stages.push(e.stage), e.stage === 'denoise' && e.step === 2 && p.dispose()) }),
        (e) => e instanceof AbortError && e.cause instanceof DisposedError,
      );
      assert.ok(!stages.includes('decode'), stages.join());
      await p.dispose();
    });

    it('when idle frees at once; afterwards generate, loadLoras, setLoraScales and unloadLoras reject with a DisposedError', async () => {
      const p = await fresh();
      await p.generate({ prompt: 'x', seed: 1, steps: 1 });
      const d = p.dispose();
      await d;
      const lora = fixture('lora', 'sd15_lora_kohya_full.safetensors');
      for (const call of [() => p.generate({ prompt: 'x' }), () => p.loadLoras([{ path: lora }]), () => p.setLoraScales({ a: 1 }), () => p.unloadLoras()]) {
        await assert.rejects(call(), (e) => e instanceof DisposedError && /the pipeline was disposed/.test(e.message));
      }
    });
  });
});
