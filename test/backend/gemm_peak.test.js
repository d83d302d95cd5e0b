// gemmPeak: the float32 kernel's FMA ceiling (register-only FMAs on every pool thread), the figure
// the benchmark scripts rate GEMMs and stages against. It must be a ceiling: a real GEMM, whose
// micro-kernel runs the same FMAs plus loads, cannot beat it by more than the machine's noise.
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const path = require('path');
const { addon } = require('../../dist/native');

const root = path.resolve(__dirname, '..', '..');
const kernel = addon().gemmInfo().kernel;

describe('gemmPeak (the float32 FMA ceiling)', function () {
  this.timeout(120000);

  it('bounds a prepacked GEMM of the text encoder\'s MLP from above', function () {
    if (kernel === 'generic') {
      console.log('      SKIPPED: the generic kernel has no FMA loop (this CPU lacks AVX2/FMA/F16C)');
      this.skip();
    }
    const a = addon();
    // pairs of measurements, alternated; the lowest GEMM / peak ratio of the pairs, so that a
    // noisy moment (a neighbour taking a core during one peak measurement) does not decide it
    let lowest = Infinity;
    const seen = [];
    for (let i = 0; i < 5; i++) {
      const peak = a.gemmPeak(0.2);
      const gemm = a.gemmBench(77, 4096, 1024, 'F16', 0.2, 'prepacked');
      assert.ok(Number.isFinite(peak) && peak > 0 && gemm > 0, `peak ${peak}, gemm ${gemm}`);
      seen.push(`${gemm.toFixed(0)}/${peak.toFixed(0)}`);
      lowest = Math.min(lowest, gemm / peak);
    }
    // a loop that spilled its accumulators to memory, or ran fewer FMAs than it counts, measures
    // well below the GEMM (~2-3x on AMD Zen 3)
    assert.ok(lowest <= 1.1, `the GEMM above the FMA peak in every pair (GFLOP/s GEMM/peak: ${seen.join(', ')})`);
  });

  it('names bad arguments, and a kernel without a loop', () => {
    const a = addon();
    for (const bad of [-1, 0, 601, Number.NaN]) assert.throws(() => a.gemmPeak(bad), (e) => e.code === 'ERR_ONESTEP_ARGUMENT' && /gemmPeak: seconds/.test(e.message), String(bad));
    assert.throws(() => a.gemmPeak('1'), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    assert.throws(() => a.gemmPeak(), (e) => e.code === 'ERR_ONESTEP_ARGUMENT');
    const env = { ...process.env, ONESTEP_GEMM_KERNEL: 'generic' };
    const r = spawnSync(process.execPath, ['-e', "try { require('./dist/native').addon().gemmPeak(0.1); console.log('no error') } catch (e) { console.log(e.code, e.message) }"], { cwd: root, env, encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ERR_ONESTEP_UNSUPPORTED gemmPeak: the generic kernel has no FMA loop/);
  });
});
