// The golden runner over ../shared/fixtures and over a copy laid out the same way elsewhere.
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { runGolden, formatResult } = require('../../dist/golden/runner');
const { fixture, fixturesDir } = require('../helpers/fixtures');

const cli = path.resolve(__dirname, '..', '..', 'dist', 'golden', 'cli.js');

describe('golden runner', () => {
  let summary;
  before(async function () {
    this.timeout(300000);
    summary = await runGolden([fixturesDir]);
  });

  it('runs ../shared/fixtures with no failure', () => {
    const failed = summary.results.filter((r) => r.status === 'FAIL');
    assert.deepStrictEqual(failed.map(formatResult), []);
  });

  it('passes every tokenizer prompt in both padding styles', () => {
    const tok = summary.results.filter((r) => r.kind === 'tokenizer');
    const prompts = JSON.parse(fs.readFileSync(fixture('tokenizer', 'golden.json'), 'utf8')).prompts.length;
    assert.strictEqual(tok.length, 2 * prompts);
    assert.ok(tok.every((r) => r.status === 'PASS'));
  });

  it('passes every rng entry bit for bit', () => {
    const rs = summary.results.filter((r) => r.kind === 'rng');
    const entries = JSON.parse(fs.readFileSync(fixture('rng', 'rng.json'), 'utf8')).entries;
    assert.strictEqual(rs.length, Array.isArray(entries) ? entries.length : Object.keys(entries).length);
    assert.ok(rs.every((r) => r.status === 'PASS' && r.value === 0), rs.filter((r) => r.status !== 'PASS').map(formatResult).join('\n'));
  });

  it('passes all 28 pipeline goldens (the LCM-LoRA one included)', () => {
    const rs = summary.results.filter((r) => r.kind === 'pipeline');
    assert.strictEqual(rs.length, 28);
    assert.ok(rs.every((r) => r.status === 'PASS' && r.value <= r.tol), rs.filter((r) => r.status !== 'PASS').map(formatResult).join('\n'));
  });

  it('passes every scheduler trajectory and schedule', () => {
    const rs = summary.results.filter((r) => r.kind === 'scheduler');
    const cases = fs.readdirSync(fixture('schedulers', 'cases')).filter((f) => f.endsWith('.json')).length;
    assert.ok(rs.length > cases, `${rs.length} scheduler lines for ${cases} cases`);
    assert.ok(rs.every((r) => r.status === 'PASS'), rs.filter((r) => r.status !== 'PASS').map(formatResult).join('\n'));
  });

  for (const [kind, count] of [['lora', 11], ['text_encoder', 10], ['unet', 16], ['vae_decode', 4], ['vae_encode', 4], ['taesd_decode', 1], ['taesd_encode', 1], ['consistency_decoder_decode', 1], ['consistency_decoder_encode', 1]]) {
    it(`passes all ${count} ${kind} goldens at their fp32 tolerance`, () => {
      const rs = summary.results.filter((r) => r.kind === kind);
      assert.strictEqual(rs.length, count);
      assert.ok(rs.every((r) => r.status === 'PASS' && r.metric === 'rel_l2' && r.value <= r.tol), rs.map(formatResult).join('\n'));
    });
  }

  it('gives every golden file one line, every kind implemented (nothing left as TODO)', () => {
    const implemented = new Set(['tokenizer', 'rng', 'scheduler', 'pipeline', 'lora', 'text_encoder', 'unet', 'vae_decode', 'vae_encode', 'taesd_decode', 'taesd_encode', 'consistency_decoder_decode', 'consistency_decoder_encode']);
    assert.deepStrictEqual(summary.results.filter((r) => r.status === 'TODO').map(formatResult), []);
    assert.ok(summary.results.every((r) => implemented.has(r.kind)), [...new Set(summary.results.map((r) => r.kind))].join(', '));
    const goldenFiles = fs.readdirSync(fixture('golden')).filter((f) => f.endsWith('.safetensors'));
    const perFile = summary.results.filter((r) => !['rng', 'scheduler', 'tokenizer'].includes(r.kind));
    assert.strictEqual(perFile.length, goldenFiles.length);
  });

  describe('on another folder laid out like the fixtures', () => {
    let dir;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-golden-'));
      fs.mkdirSync(path.join(dir, 'tokenizer'));
      for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(fixture('tokenizer', f), path.join(dir, 'tokenizer', f));
      const g = JSON.parse(fs.readFileSync(fixture('tokenizer', 'golden.json'), 'utf8'));
      g.prompts = g.prompts.slice(0, 3);
      g.prompts[1].sd15_input_ids[2] += 1;  // one wrong id: the runner must fail it
      fs.writeFileSync(path.join(dir, 'tokenizer', 'golden.json'), JSON.stringify(g));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('resolves files relative to that folder and reports the failure', async () => {
      const s = await runGolden([dir]);
      assert.strictEqual(s.passed, 5);
      assert.strictEqual(s.failed, 1);
      const f = s.results.find((r) => r.status === 'FAIL');
      assert.match(formatResult(f), /^FAIL tokenizer prompt1\.sd15 mismatches=1 tol=0/);
    });

    it('the CLI prints one line per case, the summary last, and exits 1 on failure', () => {
      const r = spawnSync(process.execPath, [cli, path.join(dir, 'tokenizer', 'golden.json')], { encoding: 'utf8' });
      assert.strictEqual(r.status, 1, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.strictEqual(lines.length, 7);
      assert.strictEqual(lines[lines.length - 1], 'golden: 5 passed, 1 failed');
      assert.ok(lines.slice(0, 6).every((l) => /^(PASS|FAIL) tokenizer prompt\d\.(sd15|sd2) mismatches=\d+ tol=0/.test(l)), r.stdout);
    });

    it('an explicit file that is not a golden, or a missing path, is a failure', async () => {
      const s = await runGolden([path.join(dir, 'tokenizer', 'vocab.json'), path.join(dir, 'nope')]);
      assert.strictEqual(s.failed, 2);
    });
  });
});
