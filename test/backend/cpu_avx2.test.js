// The CPU backend's AVX2 tier (AVX2 + FMA + F16C, no AVX-512: AMD Zen 1-3, Intel Haswell to Alder
// Lake): its GEMM micro-kernel with F16 panels and packers, vector math and Winograd transforms.
// ONESTEP_SIMD=avx2 makes an AVX-512 CPU act as one without, so that tier runs the op parity suite
// and every network golden on any machine that has AVX2; where the CPU has no AVX-512 the whole
// test run is that tier already, and the second run here is left out (said as pending, with why).
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const path = require('path');
const { fixture } = require('../helpers/fixtures');
const { FIXTURE_FOLDERS } = require('../../dist/golden/folders');
const { addon } = require('../../dist/native');

const root = path.resolve(__dirname, '..', '..');
const env = { ...process.env, ONESTEP_SIMD: 'avx2' };
for (const k of ['ONESTEP_GEMM_KERNEL', 'ONESTEP_GEMM_BF16_KERNEL', 'ONESTEP_GEMM_KC', 'ONESTEP_GEMM_MC']) delete env[k];
const node = (args) => spawnSync(process.execPath, args, { cwd: root, env, encoding: 'utf8', timeout: 900000 });
const NETWORK_FOLDERS = FIXTURE_FOLDERS.filter((f) => f.kind === 'network').map((f) => fixture(f.name));
const simd = addon().cpuInfo().simd;
const hasAvx2 = ['avx2', 'fma', 'f16c'].every((f) => simd.includes(f));
const own = addon().gemmInfo();
const alreadyAvx2 = own.kernel === 'avx2' && own.vectorMath === 'avx2' && own.winograd === 'avx2';

describe('CPU backend, AVX2 tier (ONESTEP_SIMD=avx2)', function () {
  this.timeout(900000);

  it('takes every AVX2 version, and no AVX-512 or bf16 kernel', function () {
    if (!hasAvx2) {
      console.log('      SKIPPED: this CPU lacks AVX2, FMA or F16C');
      this.skip();
    }
    const r = node(['-e', "const a = require('./dist/native').addon(); console.log(JSON.stringify({ g: a.gemmInfo(), simd: a.cpuInfo().simd }))"]);
    assert.strictEqual(r.status, 0, r.stderr);
    const { g, simd: capped } = JSON.parse(r.stdout);
    assert.deepStrictEqual([g.kernel, g.vectorMath, g.winograd, g.bf16Kernel], ['avx2', 'avx2', 'avx2', null]);
    assert.ok(!capped.some((f) => f.startsWith('avx512') || f.startsWith('amx')), capped.join(' '));
  });

  const suites = [
    ['passes the op parity suite', () => {
      const mocha = require.resolve('mocha/bin/mocha.js');
      const r = node([mocha, '--no-config', '--timeout', '300000', 'test/graph/parity.test.js']);
      assert.strictEqual(r.status, 0, r.stdout + r.stderr);
      const m = /(\d+) passing/.exec(r.stdout);
      assert.ok(m && Number(m[1]) > 0, r.stdout);
      assert.doesNotMatch(r.stdout, /failing/);
    }],
    ['passes every network golden at precision fp32', () => {
      const r = node(['dist/golden/cli.js', ...NETWORK_FOLDERS, '--quiet']);
      assert.strictEqual(r.status, 0, r.stdout + r.stderr);
      const m = /golden: (\d+) passed, 0 failed/.exec(r.stdout);
      assert.ok(m && Number(m[1]) > 0, r.stdout);
    }],
  ];
  for (const [title, fn] of suites) {
    it(title, function () {
      if (!hasAvx2 || alreadyAvx2) {
        const why = !hasAvx2 ? 'this CPU lacks AVX2, FMA or F16C'
          : process.env.ONESTEP_SIMD === 'avx2' ? 'this run already has ONESTEP_SIMD=avx2: every other test ran the AVX2 tier'
            : 'this CPU has no AVX-512: every other test already ran the AVX2 tier';
        console.log(`      SKIPPED: ${why}`);
        this.skip();
      }
      fn();
    });
  }
});
