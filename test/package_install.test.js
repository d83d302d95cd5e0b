// The install path users take: the package as npm packs it (with prebuilt binaries, as a release
// ships them: `npm run prebuild` then `npm pack`), installed from the tarball into an empty project
// on a PATH with node, npm and sh only (no cmake, no compiler, no python, no make): the install
// uses the prebuilt addon, `require('onestep')` works and a generation runs on a tiny model. Also
// with install scripts blocked (npm --ignore-scripts, as npm 12 does for unapproved packages).
'use strict';
const assert = require('assert');
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fixture } = require('./helpers/fixtures');

const root = path.resolve(__dirname, '..');
const pkg = require('../package.json');
const plat = `${process.platform}-${process.arch}`;

/** A PATH holding only node, npm and sh: nothing that could build the addon. */
function bareBin(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const which = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
  for (const cmd of ['node', 'npm', 'sh']) {
    const target = cmd === 'node' ? process.execPath : which(cmd);
    assert.ok(target, `${cmd} not found`);
    fs.symlinkSync(fs.realpathSync(target), path.join(dir, cmd));
  }
  return dir;
}

/** The environment of a user's shell: no npm_* variables from the `npm test` running us. */
function userEnv(bin) {
  const env = { PATH: bin, HOME: process.env.HOME, LANG: 'C.UTF-8' };
  for (const k of ['npm_config_cache', 'NPM_CONFIG_CACHE', 'npm_config_registry', 'TMPDIR']) if (process.env[k]) env[k] = process.env[k];
  return env;
}

describe('package: npm pack, then installed where no compiler is', function () {
  this.timeout(600000);
  let tmp;
  let tarball;
  let bin;
  before(function () {
    if (process.platform === 'win32') this.skip();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-pack-'));
    // a release tree: the files package.json ships, and prebuilds/<platform>-<arch>/ from this build
    const stage = path.join(tmp, 'stage');
    fs.mkdirSync(stage);
    for (const f of [...pkg.files, 'package.json', 'README.md']) {
      const src = path.join(root, f);
      if (!fs.existsSync(src)) continue;
      fs.cpSync(src, path.join(stage, f), { recursive: true });
    }
    const built = path.join(root, 'build', 'Release');
    const pre = path.join(stage, 'prebuilds', plat);
    fs.mkdirSync(pre, { recursive: true });
    assert.ok(fs.existsSync(path.join(built, 'onestep.node')), 'the addon is built (npm install)');
    fs.copyFileSync(path.join(built, 'onestep.node'), path.join(pre, 'onestep.napi.node'));
    for (const lib of ['libonestep_cuda.so', 'libonestep_cuda.dylib', 'onestep_cuda.dll']) {
      if (fs.existsSync(path.join(built, lib))) fs.copyFileSync(path.join(built, lib), path.join(pre, lib));
    }
    bin = bareBin(path.join(tmp, 'bin'));
    const r = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: stage, encoding: 'utf8', env: userEnv(bin) });
    assert.strictEqual(r.status, 0, r.stderr);
    tarball = path.join(tmp, JSON.parse(r.stdout)[0].filename);
    assert.ok(fs.existsSync(tarball));
  });
  after(() => tmp && fs.rmSync(tmp, { recursive: true, force: true }));

  it('the tarball holds the prebuilt addon, the compiled JS, the page and the sources for a fallback build; no tests or fixtures', () => {
    const list = spawnSync('tar', ['tzf', tarball], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const f of [`package/prebuilds/${plat}/onestep.napi.node`, 'package/dist/index.js', 'package/dist/index.d.ts', 'package/esm/index.mjs', 'package/web/index.html', 'package/bin/onestep.js', 'package/native/sources.json', 'package/binding.gyp', 'package/scripts/install.js']) {
      assert.ok(list.includes(f), `${f} is packed`);
    }
    assert.deepStrictEqual(list.filter((f) => /^package\/(test|lib|\.ci)\//.test(f) || /\.safetensors$/.test(f)), []);
  });

  for (const mode of ['install scripts run', 'install scripts blocked (--ignore-scripts)']) {
    it(`npm install <tarball> into an empty project with no compiler (${mode}): require works and generate runs`, () => {
      const app = path.join(tmp, mode.startsWith('install scripts run') ? 'app' : 'app-noscripts');
      fs.mkdirSync(app);
      fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
      const args = ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts'];
      if (mode.includes('blocked')) args.push('--ignore-scripts');
      const r = spawnSync('npm', args, { cwd: app, encoding: 'utf8', env: userEnv(bin) });
      assert.strictEqual(r.status, 0, `npm install failed:\n${r.stdout}\n${r.stderr}`);
      if (!mode.includes('blocked')) assert.match(r.stdout + r.stderr, /\[onestep\] using prebuilt prebuilds/);
      assert.doesNotMatch(r.stdout + r.stderr, /cmake|node-gyp rebuild|\bg\+\+/);
      const script = `
        const o = require('onestep');
        (async () => {
          const i = o.info();
          const pipe = await o.loadPipeline(${JSON.stringify(fixture('models', 'tiny-sd21'))});
          const [img] = await pipe.generate({ prompt: 'a fox', seed: 3 });
          await pipe.dispose();
          console.log(JSON.stringify({ addon: i.addon, cpu: i.backends.cpu.usable, size: [img.width, img.height], bytes: img.png().length }));
        })().catch((e) => { console.error(e); process.exit(1); });`;
      const g = spawnSync('node', ['-e', script], { cwd: app, encoding: 'utf8', env: userEnv(bin) });
      assert.strictEqual(g.status, 0, g.stderr);
      const out = JSON.parse(g.stdout.trim().split('\n').pop());
      assert.ok(out.addon.startsWith(path.join(fs.realpathSync(app), 'node_modules', 'onestep', 'prebuilds', plat)), out.addon);
      assert.deepStrictEqual([out.cpu, out.size], [true, [64, 64]]);
      const cli = spawnSync('node', [path.join(app, 'node_modules', '.bin', 'onestep'), 'info'], { cwd: app, encoding: 'utf8', env: userEnv(bin) });
      assert.strictEqual(cli.status, 0, cli.stderr);
      assert.match(cli.stdout, /^onestep \d+\.\d+\.\d+/);
    });
  }
});
