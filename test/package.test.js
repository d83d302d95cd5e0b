// The package as users load it: require, ESM import (same exports), the CLI, and info().
'use strict';
const assert = require('assert');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const onestep = require('..');

const root = path.resolve(__dirname, '..');
const node = (args, opts = {}) => spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', ...opts });

function onPath(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

describe('package', () => {
  it("require('onestep') works by name", () => {
    const r = node(['-e', "const o = require('onestep'); if (typeof o.info !== 'function') process.exit(3); console.log(o.version)"]);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.strictEqual(r.stdout.trim(), require('../package.json').version);
  });

  it("ESM import from 'onestep' gives the same named exports as require", () => {
    const r = node(['--input-type=module', '-e', "import * as o from 'onestep'; console.log(JSON.stringify(Object.keys(o).filter((k) => k !== 'default').sort()))"]);
    assert.strictEqual(r.status, 0, r.stderr);
    assert.deepStrictEqual(JSON.parse(r.stdout), Object.keys(onestep).sort());
  });

  it('ships type declarations', () => {
    const pkg = require('../package.json');
    assert.ok(fs.existsSync(path.join(root, pkg.types)));
    assert.strictEqual(pkg.exports['.'].types, pkg.types);
  });
});

describe('info()', () => {
  const i = onestep.info();

  it('reports version, platform and the CPU backend', () => {
    assert.strictEqual(i.version, require('../package.json').version);
    assert.strictEqual(i.backends.cpu.usable, true);
    assert.ok(i.backends.cpu.threads >= 1);
    assert.ok(Array.isArray(i.backends.cpu.simd));
    assert.ok(fs.existsSync(i.addon));
  });

  it('says exactly why CUDA is unusable when it is', () => {
    const c = i.backends.cuda;
    assert.strictEqual(c.compiled, fs.existsSync(c.library));
    if (c.usable) {
      assert.strictEqual(c.reason, undefined);
      assert.ok(c.devices.length > 0);
      for (const d of c.devices) assert.match(d.computeCapability, /^\d+\.\d+$/);
    } else {
      assert.ok(typeof c.reason === 'string' && c.reason.length > 10, `reason: ${c.reason}`);
      if (!c.compiled) assert.match(c.reason, /not built/);
      else if (!fs.existsSync('/dev/nvidiactl') && process.platform === 'linux') assert.match(c.reason, /driver|device/);
    }
  });

  it('the CUDA backend library is built wherever nvcc is (as on CI)', function () {
    if (!onPath('nvcc') || process.env.ONESTEP_CUDA === '0') {
      console.log('      (no nvcc on PATH: the CUDA library is not expected here)');
      return;
    }
    assert.strictEqual(i.backends.cuda.compiled, true, `nvcc is on PATH but ${i.backends.cuda.library} is absent`);
    assert.match(i.backends.cuda.buildInfo, /cuda_runtime=\d+ archs=/);
  });
});

describe('CLI', () => {
  const cli = path.join(root, 'bin', 'onestep.js');

  it('npx onestep info answers', () => {
    const out = execFileSync(process.execPath, [cli, 'info'], { encoding: 'utf8' });
    assert.match(out, /^onestep \d+\.\d+\.\d+/);
    assert.match(out, /\ncpu: +usable/);
    assert.match(out, /\ncuda: (usable|unusable: .+)/);
  });

  it('info --json is the info() object', () => {
    const j = JSON.parse(execFileSync(process.execPath, [cli, 'info', '--json'], { encoding: 'utf8' }));
    assert.strictEqual(j.version, onestep.version);
    assert.strictEqual(j.backends.cuda.usable, onestep.info().backends.cuda.usable);
  });

  it('an unknown command exits 2 with usage', () => {
    const r = node([cli, 'frobnicate']);
    assert.strictEqual(r.status, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'/);
  });
});
