// cusim (kernels/sim) checks itself: the CUDA semantics the kernels rely on (shuffles, ballots,
// block barriers and __shared__ memory, WMMA products, capture and replay, launches from several
// OS threads at once) and the misuses it
// promises to report instead of computing something (a divergent barrier, a shuffle with an exited
// lane, a misaligned WMMA pointer, a lane that skips a WMMA store, an overrun past an
// allocation, a backwards copy, a synchronous copy inside a capture, a bad launch, out of memory).
// Without these, "the kernels pass on cusim" would say little.
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { buildCudaSim } = require('../../../scripts/build-cuda-sim');

const root = path.resolve(__dirname, '..', '..', '..');
const exe = path.join(root, 'build', 'cusim', 'selftest');

describe('cusim: the CUDA simulator the kernel tests run on', function () {
  this.timeout(300000);

  before(async function () {
    await buildCudaSim();  // builds build/cusim/cusim.cc.o among the library's objects
    const cxx = process.env.CXX || 'g++';
    const args = ['-std=c++17', '-O1', '-DONESTEP_CUDA_SIM', '-I', path.join(root, 'kernels', 'sim', 'include'), '-I', path.join(root, 'kernels')];
    if (/^flags\s*:.*\bf16c\b/m.test(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')) args.push('-mf16c');
    args.push('-x', 'c++', path.join(__dirname, 'selftest.cu'), '-x', 'none', path.join(root, 'build', 'cusim', 'cusim.cc.o'), '-o', exe, '-lpthread');
    const r = spawnSync(cxx, args, { encoding: 'utf8' });
    assert.strictEqual(r.status, 0, r.stderr);
  });

  const run = (c) => spawnSync(exe, [c], { encoding: 'utf8', timeout: 60000 });
  const ok = (c) => {
    const r = run(c);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok /, r.stdout);
    return r.stdout;
  };
  const reports = (c, pattern) => {
    const r = run(c);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.match(r.stdout, /^error: /, `${c} was not reported: ${r.stdout}`);
    assert.match(r.stdout, pattern);
  };

  it('shuffles (xor, down, up, indexed) and ballots give what CUDA defines', () => ok('shuffles'));
  it('__syncthreads orders __shared__ writes and reads, one copy per block', () => ok('barriers'));
  it('a WMMA 16x16x16 product (row-major A, column-major B) matches float math on the fp16 operands', () => ok('wmma'));
  it('mma.sync m16n8k16 (fp16, bf16), ldmatrix x4 (plain, .trans) and cp.async (kernels/mma.cuh) follow the PTX fragment layouts', () => ok('mma'));
  it('cp.async lands at its wait (NaN before it), and a warp runs ahead of the others to the next block barrier', () => ok('async-order'));
  it('capture records launches without running them, and every replay runs them', () => ok('capture'));
  it('host/device direction and bounds of copies are checked', () => ok('copy-kinds'));
  it('launches from four OS threads at once each run whole, once', () => ok('concurrent'));
  it('an allocation beyond the memory budget is cudaErrorMemoryAllocation', () => {
    assert.match(ok('out-of-memory'), /out of memory: \d+ bytes requested/);
  });

  it('reports a deadlock: half a warp at __syncthreads, half at a shuffle', () => reports('divergent-barrier', /deadlock/));
  it('reports a shuffle whose mask names a lane that exited', () => reports('exited-lane', /lane 3 of warp 0 exited/));
  it('reports a WMMA load from a pointer that is not 32-byte aligned', () => reports('wmma-misaligned', /not 32-byte aligned/));
  it('a lane that skips a WMMA store leaves its elements unwritten (NaN poison), as on a GPU', () =>
    reports('wmma-skipped-lane', /C\[\d+\]\[\d+\] = -?nan/));
  it('reports a launch with more than 1024 threads per block', () => reports('bad-config', /cudaErrorInvalidConfiguration/));
  it('a write past the end of an allocation faults (guard page) instead of corrupting memory', () => {
    const r = run('overrun');
    assert.strictEqual(r.signal, 'SIGSEGV', `status ${r.status}, stdout ${r.stdout}`);
  });
});
