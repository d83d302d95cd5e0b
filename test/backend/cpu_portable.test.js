// The CPU backend's portable code, on any machine: what a CPU without AVX-512 (or without bf16)
// runs. ONESTEP_SIMD=none takes the scalar vector math and Winograd transforms, and the GEMM
// switches the portable micro-kernels (float32 and bf16, the same arithmetic as the SIMD ones); the
// op parity suite and every network golden, at fp32 and at bf16, must pass that way too.
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const path = require('path');
const { fixture } = require('../helpers/fixtures');
const { FIXTURE_FOLDERS } = require('../../dist/golden/folders');

const root = path.resolve(__dirname, '..', '..');
const env = { ...process.env, ONESTEP_SIMD: 'none', ONESTEP_GEMM_KERNEL: 'generic', ONESTEP_GEMM_BF16_KERNEL: 'generic' };
const node = (args) => spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8', timeout: 900000 });
const NETWORK_FOLDERS = FIXTURE_FOLDERS.filter((f) => f.kind === 'network').map((f) => fixture(f.name));

describe('CPU backend, portable code only (ONESTEP_SIMD=none, generic GEMM kernels)', function () {
  this.timeout(900000);

  it('runs that code: the kernels report generic', () => {
    const r = node(['-e', "console.log(JSON.stringify(require('./dist/native').addon().gemmInfo()))"]);
    assert.strictEqual(r.status, 0, r.stderr);
    const g = JSON.parse(r.stdout);
    assert.deepStrictEqual([g.kernel, g.bf16Kernel], ['generic', 'generic']);
  });

  it('passes the op parity suite', () => {
    const mocha = require.resolve('mocha/bin/mocha.js');
    const r = node([mocha, '--no-config', '--timeout', '300000', 'test/graph/parity.test.js']);
    assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /\d+ passing/);
    assert.match(r.stdout, /precision bf16 \(generic kernel\)/);
    assert.doesNotMatch(r.stdout, /failing/);
  });

  for (const precision of ['fp32', 'bf16']) {
    it(`passes every network golden at precision ${precision}`, () => {
      const r = node(['dist/golden/cli.js', ...NETWORK_FOLDERS, '--precision', precision, '--quiet']);
      assert.strictEqual(r.status, 0, r.stdout + r.stderr);
      const m = /golden: (\d+) passed, 0 failed/.exec(r.stdout);
      assert.ok(m && Number(m[1]) > 0, r.stdout);
    });
  }
});
