// The CPU thread pool (native/cpu/thread_pool.cc) and the GEMM work splits on it
// (native/cpu/gemm.cc): the same graphs run many times, alone and all at once (loops started on the
// pool from several threads), on pools of several sizes, with the
// workers sleeping between loops (ONESTEP_SPIN_US=0), spinning briefly (1 us: both paths race)
// and spinning (the default), must finish (no lost wake-up: the child has a deadline) and give the
// one-thread result bit for bit (each output element is summed in the same order whatever the
// split), which is itself checked against the float64 reference.
'use strict';
const assert = require('assert');
const path = require('path');
const { spawnSync } = require('child_process');
const { freshSeed } = require('../helpers/random');
const { addon } = require('../../dist/native');

const child = path.join(__dirname, '..', 'helpers', 'pool_stress.js');
// 77 rows: one row block (A packed once, threads split the panels); 113, 250, 1029: row blocks
// of whole micro-panels, balanced across the threads, the last one partial
const ROWS = [77, 113, 250, 1029];
// and the child's few rows on 50 panels (each thread packs its own A) and on 4 panels 1300 deep (A
// packed once for all threads), its conv2d by Winograd (F(2x2, 3x3): 285 tiles, F(4x4, 3x3): 80, in balanced blocks)
// and, where the kernel has one, a conv2d to 3 channels by the narrow GEMM (210 rows, blocks of 48)
const CASES = [...ROWS, 'few_rows_wide', 'few_rows_deep', 'winograd', 'winograd_f4x4', ...(addon().gemmInfo().narrow ? ['narrow_gemm'] : [])];

function runChild(seed, env, runs) {
  const r = spawnSync(process.execPath, [child, String(seed), String(runs), ...ROWS.map(String)], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 90000,
  });
  assert.ok(!r.error && r.status === 0, `pool_stress ${JSON.stringify(env)} (seed ${seed}): ${r.error ? r.error.message : `exit ${r.status}`}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

describe('CPU thread pool', function () {
  this.timeout(300000);
  const seed = freshSeed();

  it('gives the one-thread result bit for bit on 2 and 3 threads, sleeping or spinning between loops', () => {
    const one = runChild(seed, { ONESTEP_NUM_THREADS: '1' }, 2);
    for (const M of CASES) assert.ok(one[M].relL2 < 1e-5, `${M} rows on one thread: rel L2 ${one[M].relL2} from the reference (seed ${seed})`);
    for (const threads of ['2', '3'])
      for (const spin of ['0', '1', '200']) {
        const env = { ONESTEP_NUM_THREADS: threads, ONESTEP_SPIN_US: spin };
        const got = runChild(seed, env, 40);
        for (const M of CASES) {
          assert.strictEqual(got[M].differing, 0, `${M} rows ${JSON.stringify(env)}: ${got[M].differing} of 80 runs differ from the first (seed ${seed})`);
          assert.strictEqual(got[M].digest, one[M].digest, `${M} rows ${JSON.stringify(env)}: differs from the one-thread result (seed ${seed})`);
        }
      }
  });
});
