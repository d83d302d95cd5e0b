// npx onestep serve: the README-style command serves the page and the APIs, stops cleanly on
// SIGTERM, and refuses bad options with exit 2.
'use strict';
const assert = require('assert');
const { spawn, spawnSync } = require('child_process');
const path = require('path');
const { fixture } = require('../helpers/fixtures');
const { request, pngSize } = require('./helpers');

const cli = path.resolve(__dirname, '..', '..', 'bin', 'onestep.js');

describe('CLI serve', function () {
  this.timeout(60000);

  it('serve -m tiny-sd21 serves the page and the APIs; SIGTERM stops it with exit 0', async () => {
    const child = spawn(process.execPath, [cli, 'serve', '-m', fixture('models', 'tiny-sd21'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    try {
      const url = await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no URL within 30 s; stdout: ${out}; stderr: ${err}`)), 30000);
        child.stdout.on('data', () => {
          const m = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
          if (m) {
            clearTimeout(t);
            resolve(m[1]);
          }
        });
        child.on('exit', () => reject(new Error(`exited early; stderr: ${err}`)));
      });
      assert.match(out, /serving tiny-sd21 \(sd, 64x64, 1 step\)/);
      assert.match((await request(url)).body.toString(), /<textarea id="prompt"/);
      assert.strictEqual((await request(`${url}health`)).status, 200);
      const r = await request(`${url}generate`, { method: 'POST', json: { prompt: 'a fox', seed: 1 } });
      assert.deepStrictEqual(pngSize(r.json().images[0].b64_png), [64, 64]);
      const o = await request(`${url}v1/images/generations`, { method: 'POST', json: { prompt: 'a fox' } });
      assert.strictEqual(o.status, 200);
      await new Promise((r) => setTimeout(r, 50));
      assert.match(err, /POST \/generate 200/);
    } finally {
      child.kill('SIGTERM');
    }
    const { code } = await exited;
    assert.strictEqual(code, 0, err);
    assert.match(err, /SIGTERM: finishing running requests/);
    assert.match(err, /stopped/);
  });

  for (const [args, re] of [
    [[], /--model \(-m\) is required/],
    [['-m', 'x', '--port', 'abc'], /--port must be an integer/],
    [['-m', 'x', '--max-steps', '0'], /--max-steps must be an integer >= 1/],
    [['-m', 'x', '--frobnicate'], /Unknown option '--frobnicate'/],
  ]) {
    it(`serve${args.map((a) => ` ${a}`).join('')} -> exit 2`, () => {
      const r = spawnSync(process.execPath, [cli, 'serve', ...args], { encoding: 'utf8' });
      assert.strictEqual(r.status, 2, r.stderr);
      assert.match(r.stderr, re);
    });
  }

  it('serve --help prints the options; a missing model exits 1 with a typed error', () => {
    const h = spawnSync(process.execPath, [cli, 'serve', '--help'], { encoding: 'utf8' });
    assert.strictEqual(h.status, 0);
    assert.match(h.stdout, /--api-key KEY/);
    const m = spawnSync(process.execPath, [cli, 'serve', '-m', '/no/such/model', '--port', '0'], { encoding: 'utf8' });
    assert.strictEqual(m.status, 1, m.stderr);
    assert.match(m.stderr, /\[ERR_ONESTEP_FILE_NOT_FOUND\]/);
  });

  it('bad --port / --api-key values and a port in use fail before the model loads', async () => {
    const net = require('net');
    const model = fixture('models', 'tiny-sd21');
    const key = spawnSync(process.execPath, [cli, 'serve', '-m', model, '--port', '0', '--api-key', 'short'], { encoding: 'utf8' });
    assert.strictEqual(key.status, 1, key.stderr);
    assert.match(key.stderr, /apiKey must be a string of at least 8 characters \[ERR_ONESTEP_ARGUMENT\]/);
    assert.doesNotMatch(key.stderr, /loading/);
    const big = spawnSync(process.execPath, [cli, 'serve', '-m', model, '--port', '70000'], { encoding: 'utf8' });
    assert.strictEqual(big.status, 1, big.stderr);
    assert.match(big.stderr, /port must be an integer in 0\.\.65535/);
    assert.doesNotMatch(big.stderr, /loading/);
    const busy = net.createServer();
    await new Promise((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const { port } = busy.address();
      const r = await new Promise((resolve) => {
        const c = spawn(process.execPath, [cli, 'serve', '-m', model, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d) => (err += d));
        c.on('exit', (code) => resolve({ code, err }));
      });
      assert.strictEqual(r.code, 1, r.err);
      assert.match(r.err, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`));
      assert.doesNotMatch(r.err, /loading/);
    } finally {
      busy.close();
    }
  });
});
