// npx onestep generate: the README's command writes a valid PNG; bad input gives clean messages
// and exit codes (2 usage, 1 runtime).
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { PNG } = require('pngjs');
const { fixture } = require('./helpers/fixtures');

const cli = path.resolve(__dirname, '..', 'bin', 'onestep.js');
const run = (args, opts = {}) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', ...opts });

describe('CLI generate', function () {
  this.timeout(120000);
  let dir;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-cli-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes a valid PNG (the README command)', () => {
    const out = path.join(dir, 'fox.png');
    const r = run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'a fox', '--seed', '1', '-o', out]);
    assert.strictEqual(r.status, 0, r.stderr);
    const png = PNG.sync.read(fs.readFileSync(out));
    assert.deepStrictEqual([png.width, png.height], [64, 64]);
    assert.match(r.stderr, /wrote .*fox\.png \(64x64/);
    // same seed, same bytes
    const again = path.join(dir, 'fox2.png');
    assert.strictEqual(run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'a fox', '--seed', '1', '-o', again, '-q']).status, 0);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(again)));
  });

  it('several images get numbered files; options reach the pipeline', () => {
    const out = path.join(dir, 'multi.png');
    const r = run(['generate', '-m', fixture('models', 'tiny-lcm'), '-p', 'a', '-p', 'b', '--batch', '2', '--steps', '2', '--cfg', '3', '--seed', '9', '-o', out, '-q']);
    assert.strictEqual(r.status, 0, r.stderr);
    for (let i = 1; i <= 4; i++) assert.ok(fs.existsSync(path.join(dir, `multi-${i}.png`)));
    const i2i = run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'x', '--image', path.join(dir, 'multi-1.png'), '--strength', '0.5', '--steps', '2', '-o', path.join(dir, 'i2i.png'), '-q']);
    assert.strictEqual(i2i.status, 0, i2i.stderr);
    // img2img with the model's defaults (Turbo: 1 step; strength 0.5) and a size to resize to
    const plain = run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'x', '--image', path.join(dir, 'multi-1.png'), '-W', '48', '-H', '40', '-o', path.join(dir, 'i2i-default.png')]);
    assert.strictEqual(plain.status, 0, plain.stderr);
    assert.match(plain.stderr, /wrote .*i2i-default\.png \(48x40;/);
    const taesd = run(['generate', '-m', fixture('models', 'tiny-sd15'), '-p', 'x', '--taesd', fixture('models', 'tiny-taesd'), '--steps', '2', '-o', path.join(dir, 't.png'), '-q']);
    assert.strictEqual(taesd.status, 0, taesd.stderr);
  });

  it('--lora FILE[:SCALE] fuses LoRAs (repeatable) and reports them; --strict-lora makes unknown keys fatal', () => {
    const model = fixture('models', 'tiny-sd15');
    const lora = (f) => fixture('lora', `${f}.safetensors`);
    const gen = (name, extra) => run(['generate', '-m', model, '-p', 'a cat', '--seed', '3', '--steps', '2', '-o', path.join(dir, name), ...extra]);
    const plain = gen('plain.png', ['-q']);
    assert.strictEqual(plain.status, 0, plain.stderr);
    const r = gen('lora.png', ['--lora', `${lora('sd15_lora_kohya_full')}:0.5`, '--lora', lora('sd15_lora_kohya_te')]);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, /LoRA sd15_lora_kohya_full \(kohya\) x0\.5: \d+ modules \(unet \d+\)/);
    assert.match(r.stderr, /LoRA sd15_lora_kohya_te \(kohya\) x1: \d+ modules \(unet \d+, text_encoder \d+\)/);
    assert.ok(!fs.readFileSync(path.join(dir, 'lora.png')).equals(fs.readFileSync(path.join(dir, 'plain.png'))));
    const zero = gen('zero.png', ['--lora', `${lora('sd15_lora_kohya_full')}:0`, '-q']);
    assert.strictEqual(zero.status, 0, zero.stderr);
    assert.ok(fs.readFileSync(path.join(dir, 'zero.png')).equals(fs.readFileSync(path.join(dir, 'plain.png'))), 'scale 0: the plain image');
    const strict = gen('x.png', ['--lora', lora('sdxl_lora_peft'), '--strict-lora']);
    assert.strictEqual(strict.status, 1);
    assert.match(strict.stderr, /tensors were not applied.*\[ERR_ONESTEP_LORA\]/);
    const missing = gen('x.png', ['--lora', '/no/such/lora.safetensors:0.5']);
    assert.strictEqual(missing.status, 1);
    assert.match(missing.stderr, /\/no\/such\/lora\.safetensors/);
  });

  it('a single-file checkpoint with --config writes the folder\'s image; without it, a clear error', () => {
    const out = path.join(dir, 'single.png');
    const r = run(['generate', '-m', fixture('single_file', 'tiny-sd21.safetensors'), '--config', fixture('models', 'tiny-sd21'), '-p', 'a fox', '--seed', '1', '-o', out, '-q']);
    assert.strictEqual(r.status, 0, r.stderr);
    const ref = path.join(dir, 'folder.png');
    assert.strictEqual(run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'a fox', '--seed', '1', '-o', ref, '-q']).status, 0);
    assert.ok(fs.readFileSync(out).equals(fs.readFileSync(ref)));
    const bare = run(['generate', '-m', fixture('single_file', 'tiny-sd21.safetensors'), '-p', 'a fox', '-o', path.join(dir, 'x.png')]);
    assert.strictEqual(bare.status, 1);
    assert.match(bare.stderr, /attention heads are unknown.*--config.*\[ERR_ONESTEP_CONFIG\]/);
    assert.strictEqual(run(['generate', '-m', 'm', '-p', 'x', '--prediction', 'x0']).status, 2);
  });

  for (const [args, code, msg] of [
    [['generate', '-p', 'x'], 2, /--model \(-m\) is required/],
    [['generate', '-m', 'm'], 2, /--prompt \(-p\) is required/],
    [['generate', '-m', 'm', '-p', 'x', '--steps', 'many'], 2, /--steps must be an integer/],
    [['generate', '-m', 'm', '-p', 'x', '--scheduler', 'heun'], 2, /--scheduler must be one of/],
    [['generate', '-m', 'm', '-p', 'x', '--frobnicate'], 2, /Unknown option '--frobnicate'/],
    [['generate', '-m', '/no/such/model', '-p', 'x'], 1, /model folder not found: \/no\/such\/model \[ERR_ONESTEP_FILE_NOT_FOUND\]/],
  ]) {
    it(`${args.slice(1).join(' ')} -> exit ${code}`, () => {
      const r = run(args);
      assert.strictEqual(r.status, code, r.stderr);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
    });
  }

  it('bad generation arguments are runtime errors with the message', () => {
    const r = run(['generate', '-m', fixture('models', 'tiny-sd21'), '-p', 'x', '-W', '60', '-q']);
    assert.strictEqual(r.status, 1);
    assert.match(r.stderr, /width must be a multiple of 8/);
  });

  it('--help prints the options', () => {
    const r = run(['generate', '--help']);
    assert.strictEqual(r.status, 0);
    assert.match(r.stdout, /--scheduler NAME/);
  });
});
