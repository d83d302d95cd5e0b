// The page in a real headless Chromium (Debian's chromium driven by playwright-core): type a
// prompt, an image appears with the latency of the last generation; img2img from an uploaded
// file. Screenshots go to test-artifacts/. A missing browser is a failure in CI (CI set; .ci/run
// installs Debian's chromium) and elsewhere a visibly skipped suite that says how to install it.
'use strict';
const assert = require('assert');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Rng } = require('../helpers/random');
const { startServer, pngSize, watched, tinyPipeline } = require('./helpers');

const CHROMIUM = process.env.ONESTEP_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('server: the page in headless Chromium', function () {
  this.timeout(90000);
  const rng = new Rng();
  let s;
  let pipe;
  let context;
  let page;
  let profile;
  const pageErrors = [];

  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      const how = `install it with 'apt-get install -y --no-install-recommends chromium' (Debian / Ubuntu) or point ONESTEP_CHROMIUM at a Chromium binary`;
      if (process.env.CI) throw new Error(`Chromium not found at ${CHROMIUM} (required in CI): ${how}`);
      console.log(`      SKIPPED: the page tests need Chromium, not found at ${CHROMIUM}; ${how}`);
      this.skip();
    }
    const { chromium } = require('playwright-core');
    pipe = watched(await tinyPipeline());
    s = await startServer({ pipeline: pipe });
    profile = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1100, height: 720 } });
    page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    if (context) await context.close();
    if (profile) fs.rmSync(profile, { recursive: true, force: true });
    if (s) await s.server.close();
  });

  /** Waits until the page shows a decoded image for `prompt` (in `mode`) and returns what it shows. */
  async function shownImage(prompt, mode) {
    await page.waitForFunction(
      ([p, m]) => {
        const img = document.getElementById('output');
        return !img.hidden && img.complete && img.naturalWidth > 0 && img.dataset.prompt === p && img.dataset.mode === m;
      },
      [prompt, mode],
      { timeout: 30000 },
    );
    return page.evaluate(() => {
      const img = document.getElementById('output');
      return { src: img.src, width: img.naturalWidth, height: img.naturalHeight, id: Number(img.dataset.id), latency: document.getElementById('latency').textContent, detail: document.getElementById('detail').textContent };
    });
  }

  it('typing a prompt makes an image appear, with the latency of the last generation', async () => {
    await page.goto(s.url);
    await page.waitForSelector('#conn.ok', { timeout: 15000 });
    assert.strictEqual(await page.textContent('#model'), 'tiny-sd21 · sd · standard');
    assert.ok(await page.isHidden('#keyRow'), 'no API key field without a key');
    const words = ['fox', 'owl', 'lighthouse', 'teapot', 'glacier', 'violin'];
    const prompt = `a watercolor ${rng.pick(words)} at dawn, ${rng.pick(words)} in the background`;
    const calls = pipe.calls.length;
    await page.click('#prompt');
    // type half, pause past the page's 120 ms debounce (an image for the half prompt), type the rest
    const half = prompt.slice(0, prompt.indexOf(' at dawn'));
    await page.keyboard.type(half, { delay: 20 + rng.int(40) });
    const first = await shownImage(half, 'txt2img');
    await page.keyboard.type(prompt.slice(half.length), { delay: 20 + rng.int(40) });
    const shown = await shownImage(prompt, 'txt2img');
    assert.ok(shown.id > first.id, 'the image followed the typing');
    assert.deepStrictEqual([shown.width, shown.height], [64, 64]);
    assert.deepStrictEqual(pngSize(shown.src.split(',')[1]), [64, 64]);
    assert.match(shown.latency, /^\d+ ms$/);
    assert.match(shown.detail, /generation \d+ ms · seed 1 · 64×64/);
    assert.ok(pipe.calls.length > calls, 'the page generated through the server');
    const shot = path.join(ARTIFACTS, 'server-page.png');
    await page.screenshot({ path: shot });
    assert.deepStrictEqual(pngSize(fs.readFileSync(shot)), [1100, 720]);
    assert.deepStrictEqual(pageErrors, []);
  });

  it('seed and steps controls regenerate; an uploaded image gives img2img', async () => {
    const prompt = await page.inputValue('#prompt');
    const before = await shownImage(prompt, 'txt2img');
    await page.fill('#seed', String(1 + rng.int(1000)));
    await page.fill('#steps', '2');
    await page.waitForFunction((id) => Number(document.getElementById('output').dataset.id) > id, before.id, { timeout: 30000 });
    const last = pipe.calls[pipe.calls.length - 1].options;
    assert.strictEqual(last.steps, 2);
    // upload the image on screen as the img2img input
    const file = path.join(os.tmpdir(), `onestep-upload-${process.pid}.png`);
    fs.writeFileSync(file, Buffer.from(before.src.split(',')[1], 'base64'));
    try {
      await page.setInputFiles('#image', file);
      const shown = await shownImage(prompt, 'img2img');
      assert.match(shown.detail, /img2img/);
      const call = pipe.calls[pipe.calls.length - 1].options;
      assert.ok(call.image instanceof Uint8Array && call.strength === 0.5, 'the server received an image and a strength');
      await page.screenshot({ path: path.join(ARTIFACTS, 'server-page-img2img.png') });
    } finally {
      fs.rmSync(file, { force: true });
    }
    assert.deepStrictEqual(pageErrors, []);
  });

  it('an uploaded image with the default settings (Turbo: 1 step, strength 0.5) gives an image, not an error', async () => {
    const prompt = `a ${rng.pick(['red', 'blue', 'green'])} kite over the sea`;
    // a fresh page: nothing touched; an input of another size than the output
    await page.goto(s.url);
    await page.waitForSelector('#conn.ok', { timeout: 15000 });
    await page.fill('#prompt', prompt);
    await shownImage(prompt, 'txt2img');
    const file = path.join(os.tmpdir(), `onestep-upload-default-${process.pid}.png`);
    const { PNG } = require('pngjs');
    const png = new PNG({ width: 100, height: 70 });
    for (let i = 0; i < png.data.length; i++) png.data[i] = i % 4 === 3 ? 255 : rng.int(256);
    fs.writeFileSync(file, PNG.sync.write(png));
    try {
      await page.setInputFiles('#image', file);
      const shown = await shownImage(prompt, 'img2img');
      assert.deepStrictEqual([shown.width, shown.height], [64, 64]);
      const call = pipe.calls[pipe.calls.length - 1].options;
      assert.ok(call.image instanceof Uint8Array && call.steps === undefined, 'steps left to the server for img2img');
      assert.ok(await page.isHidden('#error'), await page.textContent('#error'));
    } finally {
      fs.rmSync(file, { force: true });
    }
    assert.deepStrictEqual(pageErrors, []);
  });

  it('with a ControlNet: drawing on the scribble canvas (pointer events) makes images that follow the drawing; stale drawings are dropped', async () => {
    const { fixture } = require('../helpers/fixtures');
    const cnPipe = watched(await tinyPipeline('tiny-sd15', { controlnet: fixture('models', 'tiny-sd15-controlnet') }));
    const cs = await startServer({ pipeline: cnPipe });
    try {
      await page.goto(cs.url);
      await page.waitForSelector('#conn.ok', { timeout: 15000 });
      assert.ok(await page.isVisible('#scribble'), 'the canvas is shown when the server has a ControlNet');
      const prompt = `a ${rng.pick(['stone', 'wooden', 'glass'])} house, line art`;
      await page.fill('#prompt', prompt);
      await shownImage(prompt, 'txt2img');
      const box = await page.locator('#scribble').boundingBox();
      const stroke = async (pts) => {
        await page.mouse.move(box.x + pts[0][0] * box.width, box.y + pts[0][1] * box.height);
        await page.mouse.down();
        for (const [x, y] of pts.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 4 });
        await page.mouse.up();
      };
      const shownWith = async (strokes) => {
        await page.waitForFunction((n) => {
          const img = document.getElementById('output');
          return !img.hidden && img.complete && img.dataset.strokes === String(n);
        }, strokes, { timeout: 30000 });
        return page.evaluate(() => ({ src: document.getElementById('output').src, id: Number(document.getElementById('output').dataset.id) }));
      };
      // the first stroke: images arrive while drawing and after, each request carrying the drawing as a control image
      const pts = Array.from({ length: 6 }, (_, i) => [0.15 + 0.12 * i, 0.2 + 0.1 * ((i * 7) % 5)]);
      await stroke(pts);
      const first = await shownWith(1);
      const withControl = cnPipe.calls.filter((c) => c.options.control);
      assert.ok(withControl.length >= 1, 'generations with the drawing');
      const ctl = withControl[withControl.length - 1].options.control[0];
      assert.ok(ctl.image instanceof Uint8Array && ctl.index === 0 && ctl.scale === 1);
      // a second stroke changes the image
      await stroke([[0.8, 0.1], [0.5, 0.5], [0.2, 0.9]]);
      const second = await shownWith(2);
      assert.ok(second.id > first.id && second.src !== first.src, 'the image follows the drawing');
      // stale drawings are dropped: with the server held, strokes drawn meanwhile supersede each other
      cnPipe.hold();
      const before = cs.events.length;
      await stroke([[0.1, 0.5], [0.9, 0.5]]);
      await new Promise((r) => setTimeout(r, 150));
      await stroke([[0.5, 0.1], [0.5, 0.9]]);
      await new Promise((r) => setTimeout(r, 150));
      cnPipe.release();
      const last = await shownWith(4);
      assert.ok(last.id > second.id);
      await new Promise((r) => setTimeout(r, 200));
      const outcomes = cs.events.slice(before).map((e) => e.outcome);
      assert.ok(outcomes.includes('aborted'), `a superseded drawing's generation was dropped: ${outcomes.join(', ')}`);
      // undo: back to three strokes
      await page.click('#undo');
      await shownWith(3);
      await page.screenshot({ path: path.join(ARTIFACTS, 'server-page-scribble.png') });
      assert.deepStrictEqual(pageErrors, []);
    } finally {
      await cs.server.close();
    }
  });

  it('with an API key the page asks for it, then works', async () => {
    const key = `key-${rng.int(2 ** 31)}-${Date.now()}`;
    const keyed = await startServer({ pipeline: pipe, apiKey: key });
    try {
      await page.goto(keyed.url);
      await page.waitForSelector('#keyRow', { state: 'visible', timeout: 15000 });
      assert.match(await page.textContent('#error'), /needs an API key/);
      await page.fill('#apiKey', key);
      await page.click('#saveKey');
      await page.waitForSelector('#conn.ok', { timeout: 15000 });
      await page.fill('#prompt', 'a lighthouse');
      const shown = await shownImage('a lighthouse', 'txt2img');
      assert.deepStrictEqual([shown.width, shown.height], [64, 64]);
      assert.ok(await page.isHidden('#keyRow'));
    } finally {
      await keyed.server.close();
    }
    // the 401 of GET /info is the only error the console saw
    assert.deepStrictEqual(pageErrors.filter((e) => !/status of 401/.test(e)), []);
  });
});
