// Compiling never blocks the event loop: a first generate at a new shape builds, plans and
// prepares every graph (conv kernels relaid out, Winograd transforms, ...) on worker threads;
// the JS thread only describes the graphs. Measured on a mid-size random-weight model (the
// architecture of SD-Turbo, scaled down so that its description takes a few milliseconds while
// its conv weights are large enough that preparing them on the JS thread would stall it for far
// longer than the limit).
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync, spawnSync } = require('child_process');
const { fixture } = require('../helpers/fixtures');

const LIMIT_MS = 20;

function midConfigs(dir) {
  const src = fixture('configs', 'sd_turbo');
  const out = path.join(dir, 'configs', 'mid');
  const edit = (comp, file, f) => {
    const cfg = JSON.parse(fs.readFileSync(path.join(src, comp, file), 'utf8'));
    f(cfg);
    fs.mkdirSync(path.join(out, comp), { recursive: true });
    fs.writeFileSync(path.join(out, comp, file), JSON.stringify(cfg, null, 1));
  };
  edit('scheduler', 'scheduler_config.json', () => {});
  edit('text_encoder', 'config.json', (c) => Object.assign(c, { hidden_size: 256, intermediate_size: 1024, num_attention_heads: 4, num_hidden_layers: 2, projection_dim: 256 }));
  edit('unet', 'config.json', (c) =>
    Object.assign(c, {
      block_out_channels: [192, 384, 768],
      attention_head_dim: [3, 6, 12],
      down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
      up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
      layers_per_block: 1,
      cross_attention_dim: 256,
    }),
  );
  edit('vae', 'config.json', (c) =>
    Object.assign(c, {
      block_out_channels: [64, 128, 256],
      down_block_types: c.down_block_types.slice(0, 3),
      up_block_types: c.up_block_types.slice(0, 3),
      layers_per_block: 1,
    }),
  );
  return path.join(dir, 'configs');
}

// The measurement runs in its own process (a server's, not the test runner's heap with every
// earlier test's garbage in it).
const MEASURE = `
  const { monitorEventLoopDelay } = require('perf_hooks');
  const { loadPipeline } = require(process.argv[1]);
  (async () => {
    const pipe = await loadPipeline(process.argv[2]);
    const out = [];
    for (const [width, height] of JSON.parse(process.argv[3])) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      await new Promise((r) => setTimeout(r, 20)); // the monitor's timer is running
      const t0 = Date.now();
      const [img] = await pipe.generate({ prompt: 'a lighthouse at dusk', width, height, seed: 3 });
      const ms = Date.now() - t0;
      h.disable();
      out.push({ width, height, got: [img.width, img.height], ms, maxMs: h.max / 1e6 });
    }
    await pipe.dispose();
    console.log(JSON.stringify(out));
  })().catch((e) => { console.error(e); process.exit(1); });`;

describe('the event loop during a first generate at a new shape', function () {
  this.timeout(300000);
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-loop-'));
    const script = path.join(__dirname, '..', '..', 'scripts', 'make-random-model.js');
    execFileSync(process.execPath, [script, '--config', 'mid', '--out', path.join(dir, 'model'), '--configs', midConfigs(dir)], { stdio: 'ignore' });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it(`stalls it at most ${LIMIT_MS} ms, at two new shapes in turn`, () => {
    const convBytes = fs.statSync(path.join(dir, 'model', 'unet', 'diffusion_pytorch_model.safetensors')).size;
    assert.ok(convBytes > 40e6, `the UNet (${convBytes} bytes) is too small to stall anything`);
    const shapes = [[256, 256], [320, 192]];
    const root = path.join(__dirname, '..', '..');
    // the engine's threads leave one core to the JS thread: what is measured is the JS thread's own
    // work, not the OS's time slices on a machine where every core computes (on 2 cores, 2 pool
    // threads and the JS thread: 20-29 ms delays in ~1 run of 4, the same before and after the
    // change that added this; a server that wants a responsive event loop does the same)
    const threads = String(Math.max(1, os.availableParallelism() - 1));
    const measure = () => {
      const r = spawnSync(process.execPath, ['-e', MEASURE, root, path.join(dir, 'model'), JSON.stringify(shapes)], {
        encoding: 'utf8',
        timeout: 280000,
        env: { ...process.env, ONESTEP_NUM_THREADS: threads },
      });
      assert.strictEqual(r.status, 0, r.stderr);
      const runs = JSON.parse(r.stdout.trim().split('\n').pop());
      assert.strictEqual(runs.length, shapes.length);
      for (const { width, height, got, ms } of runs) {
        assert.deepStrictEqual(got, [width, height]);
        assert.ok(ms > 4 * LIMIT_MS, `the generate took ${ms} ms: too short to tell`);
      }
      return runs;
    };
    // Work on the JS thread stalls the loop in every process at the same point; a time slice the
    // OS gives a neighbour on a shared 2-core machine does not (CI once saw 20.3 ms where this
    // machine's runs give 3-11 ms). So each shape's stall is the smallest of up to 3 fresh
    // processes, a new process started only while some shape is over the limit.
    const best = shapes.map(() => Infinity);
    const seen = [];
    for (let attempt = 0; attempt < 3 && best.some((b) => b > LIMIT_MS); attempt++) {
      const runs = measure();
      runs.forEach((x, i) => (best[i] = Math.min(best[i], x.maxMs)));
      seen.push(runs.map((x) => `${x.width}x${x.height} ${x.maxMs.toFixed(1)} ms (of a ${x.ms} ms generate)`).join(', '));
    }
    console.log(`      max event-loop delay: ${seen.join('; then ')}`);
    shapes.forEach(([width, height], i) =>
      assert.ok(best[i] <= LIMIT_MS, `${width}x${height}: the event loop stalled at least ${best[i].toFixed(1)} ms (limit ${LIMIT_MS}) in each of ${seen.length} processes: ${seen.join('; ')}`),
    );
  });
});
