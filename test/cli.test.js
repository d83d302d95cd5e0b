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
    const pixels = (f) => PNG.sync.read(fs.readFileSync(path.join(dir, f))).data;
    assert.ok(pixels('zero.png').equals(pixels('plain.png')), 'scale 0: the plain image');
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

describe('CLI: reproducible outputs, errors before the work', function () {
  this.timeout(120000);
  let dir;
  const model = () => fixture('models', 'tiny-sd21');
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-cli2-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('without --seed it prints the seed it drew; the PNG carries the parameters; onestep info reads them and the remake command gives the same image', () => {
    const out = path.join(dir, 'drawn.png');
    const r = run(['generate', '-m', model(), '-p', 'a red fox, in snow', '-n', 'blurry', '--cfg', '2', '-o', out]);
    assert.strictEqual(r.status, 0, r.stderr);
    const seed = /; seed (\d+);/.exec(r.stderr)?.[1];
    assert.ok(seed, r.stderr);
    const info = run(['info', out]);
    assert.strictEqual(info.status, 0, info.stderr);
    assert.match(info.stdout, /^  a red fox, in snow$/m);
    assert.match(info.stdout, /^  Negative prompt: blurry$/m);
    assert.match(info.stdout, new RegExp(`Steps: 1, Sampler: Euler a, CFG scale: 2, Seed: ${seed}, Size: 64x64, Model: tiny-sd21`));
    const json = JSON.parse(run(['info', out, '--json']).stdout);
    assert.strictEqual(json.onestep.seed, seed);
    // the remake: same seed, same options, same pixels
    const again = path.join(dir, 'again.png');
    const r2 = run(['generate', '-m', model(), '-p', 'a red fox, in snow', '-n', 'blurry', '--cfg', '2', '--seed', seed, '-o', again, '-q']);
    assert.strictEqual(r2.status, 0, r2.stderr);
    assert.ok(PNG.sync.read(fs.readFileSync(out)).data.equals(PNG.sync.read(fs.readFileSync(again)).data));
    const plain = path.join(dir, 'plain.png');
    assert.strictEqual(run(['generate', '-m', model(), '-p', 'x', '--no-metadata', '-o', plain, '-q']).status, 0);
    assert.match(run(['info', plain]).stdout, /no generation parameters/);
  });

  it('--precision bf16: recorded in the PNG, and the remake command carries it; a bad value is refused before loading', () => {
    const { addon } = require('../dist/native');
    // where this CPU has no bf16 kernel, the portable one (the same arithmetic)
    const env = { env: { ...process.env, ...(addon().gemmInfo().bf16Kernel ? {} : { ONESTEP_GEMM_BF16_KERNEL: 'generic' }) } };
    const out = path.join(dir, 'bf16.png');
    const r = run(['generate', '-m', model(), '-p', 'a fox', '--seed', '5', '--precision', 'bf16', '-o', out, '-q'], env);
    assert.strictEqual(r.status, 0, r.stderr);
    const info = run(['info', out]);
    assert.match(info.stdout, /Precision: bf16/);
    assert.match(info.stdout, /remake: .*--seed 5 .*--precision bf16/);
    const bad = run(['generate', '-m', model(), '-p', 'x', '--precision', 'fp16']);
    assert.strictEqual(bad.status, 2);
    assert.match(bad.stderr, /--precision must be fp32 or bf16/);
    assert.doesNotMatch(bad.stderr, /loading/);
  });

  it('a prompt past the 77-token window: one warning line naming how many tokens were dropped', () => {
    const long = `a lighthouse ${Array.from({ length: 90 }, (_, i) => `w${i}`).join(' ')}`;
    const r = run(['generate', '-m', model(), '-p', long, '-o', path.join(dir, 'long.png')]);
    assert.strictEqual(r.status, 0, r.stderr);
    const w = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
    assert.strictEqual(w.length, 1, r.stderr);
    assert.match(w[0], /the prompt has \d+ tokens; the text encoder reads 75, so the last \d+ were dropped/);
  });

  it('output path problems, bad seeds and unknown options are refused before the model loads', () => {
    const cases = [
      [['-o', path.join(dir, 'no', 'such', 'dir', 'x.png')], 1, /output folder not found: .*dir \[ERR_ONESTEP_FILE_NOT_FOUND\]/],
      [['-o', dir], 1, /is a folder; give a file name/],
      [['-o', `${dir}/`], 1, /is a folder/],
      [['--seed', '-1'], 1, /seed must be an integer in 0\.\.2\^64-1 \(omit it for a random one\), got -1 \[ERR_ONESTEP_ARGUMENT\]/],
      [['--seed', '18446744073709551616'], 1, /seed must be an integer in 0\.\.2\^64-1.*got 18446744073709551616 \[/],
      [['--seed', 'abc'], 2, /--seed must be an integer/],
    ];
    for (const [extra, code, re] of cases) {
      const r = run(['generate', '-m', model(), '-p', 'x', ...extra]);
      assert.strictEqual(r.status, code, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, extra.join(' '));
      assert.doesNotMatch(r.stderr, /loading/, `${extra.join(' ')}: checked before loading`);
      assert.doesNotMatch(r.stderr, /\d+n\b/, 'no BigInt suffix in messages');
    }
  });

  it('negative numbers and a bare --taesd parse as meant', () => {
    // --cfg -2 reaches the pipeline (which refuses it), not parseArgs' "ambiguous"
    const neg = run(['generate', '-m', model(), '-p', 'x', '--cfg', '-2', '-o', path.join(dir, 'n.png')]);
    assert.strictEqual(neg.status, 1, neg.stderr);
    assert.match(neg.stderr, /guidanceScale must be in \[0, 100\], got -2/);
    // a bare --taesd means the family's standard TAESD: offline, the hub lookup of that repo is what fails
    const t = run(['generate', '-m', model(), '-p', 'x', '--taesd', '-o', path.join(dir, 't.png')], { env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HOME: path.join(dir, 'hf') } });
    assert.strictEqual(t.status, 1, t.stderr);
    assert.match(t.stderr, /madebyollin\/taesd/);
    assert.doesNotMatch(t.stderr, /ambiguous|argument missing/);
  });

  it('--control FILE[:CONTROLNET][:SCALE] with --controlnet, windows and guess mode; misuse is a usage error', () => {
    const png = new PNG({ width: 64, height: 64 });
    for (let i = 0; i < png.data.length; i += 4) png.data[i] = png.data[i + 1] = png.data[i + 2] = (i >> 2) % 64 < 8 ? 255 : 0;
    for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
    const ctl = path.join(dir, 'scribble.png');
    fs.writeFileSync(ctl, PNG.sync.write(png));
    const sd15 = fixture('models', 'tiny-sd15');
    const cn = fixture('models', 'tiny-sd15-controlnet');
    const base = ['generate', '-m', sd15, '-p', 'a house', '--seed', '5', '--steps', '2'];
    const out = (n) => path.join(dir, `${n}.png`);
    const pixels = (n) => PNG.sync.read(fs.readFileSync(out(n))).data;
    assert.strictEqual(run([...base, '-o', out('plain'), '-q']).status, 0);
    const a = run([...base, '--controlnet', cn, '--control', ctl, '-o', out('a'), '-q']);
    assert.strictEqual(a.status, 0, a.stderr);
    const b = run([...base, '--control', `${ctl}:${cn}:1`, '-o', out('b'), '-q']);
    assert.strictEqual(b.status, 0, b.stderr);
    assert.ok(pixels('a').equals(pixels('b')), 'FILE:CONTROLNET:SCALE is the same control');
    assert.ok(!pixels('a').equals(pixels('plain')), 'the control image changes the image');
    const zero = run([...base, '--control', `${ctl}:${cn}:0`, '-o', out('zero'), '-q']);
    assert.strictEqual(zero.status, 0, zero.stderr);
    assert.ok(pixels('zero').equals(pixels('plain')), 'scale 0: the plain image');
    const w = run([...base, '--control', `${ctl}:${cn}`, '--control-start', '0', '--control-end', '0.5', '--guess-mode', '--cfg', '1', '-o', out('w'), '-q']);
    assert.strictEqual(w.status, 0, w.stderr);
    assert.match(run(['info', out('w')]).stdout, /ControlNet 0: "Model: .*tiny-sd15-controlnet, Weight: 1, Guidance Start: 0, Guidance End: 0\.5, Control Mode: guess"/);
    for (const [extra, re] of [
      [['--control', ctl], /needs a ControlNet/],
      [['--control', path.join(dir, 'none.png')], /no control image file found/],
      [['--control-end', '0.5'], /need a --control image/],
    ]) {
      const r = run([...base, ...extra, '-o', out('x')]);
      assert.ok(r.status === 2 || r.status === 1, r.stderr);
      assert.match(r.stderr, re);
    }
  });

  it('every subcommand answers --help without side effects; bench says what it writes, and refuses bad options', () => {
    const cache = path.resolve(__dirname, '..', '.cache', 'random-models');
    const before = fs.existsSync(cache) ? fs.readdirSync(cache).sort() : [];
    for (const cmd of ['generate', 'serve', 'download', 'info', 'bench', 'golden']) {
      const r = run([cmd, '--help']);
      assert.strictEqual(r.status, 0, `${cmd}: ${r.stderr}`);
      assert.match(r.stdout, /usage/, cmd);
    }
    assert.deepStrictEqual(fs.existsSync(cache) ? fs.readdirSync(cache).sort() : [], before, 'bench --help wrote nothing');
    const b = run(['bench', '--size', '100']);
    assert.strictEqual(b.status, 2);
    assert.match(b.stderr, /--size must be an integer >= 8 and a multiple of 8/);
    assert.match(run(['bench', '--help']).stdout, /written once to\s+\.cache\/random-models\/NAME .* and reused/s);
  });
});

