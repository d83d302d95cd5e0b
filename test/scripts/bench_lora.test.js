// scripts/bench-lora.js's options: parsed strictly before anything is written or loaded (an unknown
// option or a bad value exits 2 naming it, with the usage; --help exits 0).
'use strict';
const assert = require('assert');
const path = require('path');
const { spawnSync } = require('child_process');

const script = path.resolve(__dirname, '..', '..', 'scripts', 'bench-lora.js');
const run = (args) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 60000 });

describe('scripts/bench-lora.js options', () => {
  it('--help prints the usage, with --device', () => {
    const r = run(['--help']);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, /--device DEV\s+cpu \(default\) or cuda/);
  });
  for (const [args, why] of [
    [['--frobnicate'], /Unknown option '--frobnicate'/],
    [['--device', 'gpu'], /--device must be cpu or cuda, got 'gpu'/],
    [['--rank', '0'], /--rank must be an integer >= 1, got '0'/],
    [['--runs', 'two'], /--runs must be an integer >= 1, got 'two'/],
  ]) {
    it(`${args.join(' ')}: exit 2 naming it, nothing written`, () => {
      const r = run(args);
      assert.strictEqual(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /usage: npm run bench:lora/);
      assert.doesNotMatch(r.stdout, /writing random-weight/);
    });
  }
});
