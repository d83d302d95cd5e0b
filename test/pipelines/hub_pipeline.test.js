// A Hugging Face repo id works wherever a model folder does: loadPipeline and the CLI against the
// local mock hub (HF_ENDPOINT), fetching only the components a pipeline uses.
'use strict';
const assert = require('assert');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PNG } = require('pngjs');
const { loadPipeline } = require('../..');
const { MockHub, withEnv: withEnvVars } = require('../hub/mock_hub');
const { fixture } = require('../helpers/fixtures');

describe('pipelines from the hub', function () {
  this.timeout(120000);
  let hub, tmp, env;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-hubpipe-'));
    // the tiny SD-Turbo-style model, plus a component onestep never reads
    const repo = path.join(tmp, 'repo');
    fs.cpSync(fixture('models', 'tiny-sd21'), repo, { recursive: true });
    fs.mkdirSync(path.join(repo, 'safety_checker'));
    fs.writeFileSync(path.join(repo, 'safety_checker', 'config.json'), '{}');
    fs.writeFileSync(path.join(repo, 'safety_checker', 'model.safetensors'), Buffer.alloc(64));
    const index = JSON.parse(fs.readFileSync(path.join(repo, 'model_index.json'), 'utf8'));
    index.safety_checker = ['stable_diffusion', 'StableDiffusionSafetyChecker'];
    fs.writeFileSync(path.join(repo, 'model_index.json'), JSON.stringify(index));
    hub = new MockHub();
    hub.addRepo('test-org/tiny-sd21', repo);
    await hub.start();
    env = { HF_HOME: path.join(tmp, 'hf'), HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: '', HF_TOKEN: '' };
  });
  after(async () => {
    await hub.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const withEnv = (fn) => withEnvVars(env, fn);

  it('loadPipeline(repo id) downloads what the pipeline needs and generates the same image as the folder', async () => {
    const fromHub = await withEnv(async () => {
      const p = await loadPipeline('test-org/tiny-sd21');
      const [img] = await p.generate({ prompt: 'a fox', seed: 1 });
      p.dispose();
      return img;
    });
    const local = await loadPipeline(fixture('models', 'tiny-sd21'));
    const [img] = await local.generate({ prompt: 'a fox', seed: 1 });
    local.dispose();
    assert.ok(Buffer.from(fromHub.rgb).equals(Buffer.from(img.rgb)));
    const snap = path.join(env.HF_HOME, 'hub', 'models--test-org--tiny-sd21', 'snapshots');
    const [commit] = fs.readdirSync(snap);
    assert.ok(fs.existsSync(path.join(snap, commit, 'unet', 'diffusion_pytorch_model.safetensors')));
    assert.ok(!fs.existsSync(path.join(snap, commit, 'safety_checker')), 'unused components are not downloaded');
  });

  it('a ControlNet by repo id: loadPipeline({ controlnet }) downloads it (its weights and config) and gives the folder\'s image', async () => {
    const cnRepo = path.join(tmp, 'cn');
    fs.cpSync(fixture('models', 'tiny-sd15-controlnet'), cnRepo, { recursive: true });
    fs.writeFileSync(path.join(cnRepo, 'diffusion_pytorch_model.bin'), Buffer.alloc(32)); // a pickle copy: never fetched
    hub.addRepo('test-org/tiny-sd15-controlnet', cnRepo);
    const png = new PNG({ width: 64, height: 64 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : (i * 13) % 256;
    const image = PNG.sync.write(png);
    const opts = { prompt: 'a house', seed: 2, steps: 2, scheduler: 'lcm', guidanceScale: 1, control: { image } };
    const fromHub = await withEnv(async () => {
      const p = await loadPipeline(fixture('models', 'tiny-sd15'), { controlnet: 'test-org/tiny-sd15-controlnet' });
      const [img] = await p.generate(opts);
      assert.deepStrictEqual(p.controlNetNames, ['test-org/tiny-sd15-controlnet']);
      await p.dispose();
      return img;
    });
    const local = await loadPipeline(fixture('models', 'tiny-sd15'), { controlnet: fixture('models', 'tiny-sd15-controlnet') });
    const [img] = await local.generate(opts);
    await local.dispose();
    assert.ok(Buffer.from(fromHub.rgb).equals(Buffer.from(img.rgb)));
    const snap = path.join(env.HF_HOME, 'hub', 'models--test-org--tiny-sd15-controlnet', 'snapshots');
    const [commit] = fs.readdirSync(snap);
    assert.ok(fs.existsSync(path.join(snap, commit, 'diffusion_pytorch_model.safetensors')));
    assert.ok(!fs.existsSync(path.join(snap, commit, 'diffusion_pytorch_model.bin')), 'pickle weights are not downloaded');
  });

  // async: the mock hub lives in this process, so the child must not block our event loop
  const run = (args, childEnv) =>
    new Promise((resolve) => {
      const c = spawn(process.execPath, args, { env: childEnv });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d) => (stdout += d));
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (status) => resolve({ status, stdout, stderr }));
    });

  it('npx onestep generate -m <repo id> writes a PNG; download prints the snapshot', async () => {
    const cli = path.resolve(__dirname, '..', '..', 'bin', 'onestep.js');
    const childEnv = { ...process.env, HF_HOME: env.HF_HOME, HF_ENDPOINT: env.HF_ENDPOINT };
    delete childEnv.HF_HUB_CACHE;
    delete childEnv.HF_TOKEN;
    const out = path.join(tmp, 'hub-fox.png');
    const r = await run([cli, 'generate', '-m', 'test-org/tiny-sd21', '-p', 'a fox', '--seed', '1', '-o', out], childEnv);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual([PNG.sync.read(fs.readFileSync(out)).width], [64]);
    const d = await run([cli, 'download', 'test-org/tiny-sd21', '-q'], childEnv);
    assert.strictEqual(d.status, 0, d.stderr);
    assert.match(d.stdout.trim(), /models--test-org--tiny-sd21[/\\]snapshots[/\\][0-9a-f]+$/);
    const missing = await run([cli, 'generate', '-m', 'test-org/nope', '-p', 'x'], childEnv);
    assert.strictEqual(missing.status, 1);
    assert.match(missing.stderr, /test-org\/nope/);
  });
});
