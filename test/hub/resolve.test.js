// resolveModel() against a local mock of the hub (test/hub/mock_hub.js): cache layout as
// huggingface_hub writes it, file selection, variants, shards, auth, resume, integrity, hostile
// names, offline mode, redirects, abort.
'use strict';
const assert = require('assert');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { fixture } = require('../helpers/fixtures');
const { MockHub, sha256, walk } = require('./mock_hub');
const { resolveModel, HubError, HubAbortError, repoFolderName } = require('../../dist/hub');
const { ArgumentError, FileNotFoundError, OnestepError } = require('../../dist/errors');

const ENV_KEYS = [
  'HF_HOME',
  'HF_HUB_CACHE',
  'HUGGINGFACE_HUB_CACHE',
  'HF_ENDPOINT',
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'HF_TOKEN_PATH',
  'HF_HUB_OFFLINE',
  'XDG_CACHE_HOME',
  'HF_HUB_DOWNLOAD_TIMEOUT',
];

const SD21_FILES = [
  'model_index.json',
  'scheduler/scheduler_config.json',
  'text_encoder/config.json',
  'text_encoder/model.safetensors',
  'tokenizer/merges.txt',
  'tokenizer/special_tokens_map.json',
  'tokenizer/tokenizer_config.json',
  'tokenizer/vocab.json',
  'unet/config.json',
  'unet/diffusion_pytorch_model.safetensors',
  'vae/config.json',
  'vae/diffusion_pytorch_model.safetensors',
];

let tmp;
let reposDir;
let hub;
let savedEnv;
let homeCount = 0;

function copyDir(src, dst) {
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

function randomFile(p, size, seed) {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  const out = Buffer.alloc(size);
  let h = crypto.createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += h.length) {
    h.copy(out, off);
    h = crypto.createHash('sha256').update(h).digest();
  }
  fs.writeFileSync(p, out);
}

function makeRepo(name, build) {
  const dir = path.join(reposDir, name);
  build(dir);
  return dir;
}

const cacheDir = () => process.env.HF_HUB_CACHE || path.join(process.env.HF_HOME, 'hub');
const repoRoot = (id) => path.join(cacheDir(), repoFolderName(id));
const commitOf = (id) => hub.repos.get(id).commit;

async function rejects(promise, check) {
  let error;
  try {
    await promise;
  } catch (e) {
    error = e;
  }
  assert.ok(error, 'expected a rejection');
  check(error);
  return error;
}

function assertHubError(e, code, re) {
  assert.ok(e instanceof HubError, `expected a HubError, got ${e && e.stack}`);
  assert.ok(e instanceof OnestepError);
  assert.strictEqual(e.code, code, e.message);
  if (re) assert.match(e.message, re);
}

/** Every path (files and folders) under `dir`, relative, excluding `skip` folders. */
function tree(dir, skip) {
  const out = [];
  const rec = (abs, rel) => {
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const a = path.join(abs, e.name);
      if (skip.includes(a)) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) rec(a, r);
    }
  };
  rec(dir, '');
  return out.sort();
}

describe('hub: resolveModel against a mock hub', () => {
  before(async function () {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-hub-'));
    reposDir = path.join(tmp, 'repos');
    const sd21 = fixture('models', 'tiny-sd21');
    const taesd = fixture('models', 'tiny-taesd');
    hub = new MockHub();

    hub.addRepo(
      'test-org/tiny-sd21',
      makeRepo('sd21', (d) => {
        copyDir(sd21, d);
        // things a pipeline download must leave alone
        randomFile(path.join(d, 'unet/diffusion_pytorch_model.bin'), 3000, 'bin');
        randomFile(path.join(d, 'text_encoder/model.onnx'), 3000, 'onnx');
        randomFile(path.join(d, 'text_encoder/flax_model.msgpack'), 3000, 'msgpack');
        randomFile(path.join(d, 'sd21-base.ckpt'), 3000, 'ckpt');
        fs.writeFileSync(path.join(d, 'README.md'), '# tiny\n');
      }),
    );

    hub.addRepo(
      'test-org/variant',
      makeRepo('variant', (d) => {
        copyDir(sd21, d);
        randomFile(path.join(d, 'unet/diffusion_pytorch_model.fp16.safetensors'), 70000, 'unet fp16');
        randomFile(path.join(d, 'unet/diffusion_pytorch_model.non_ema.safetensors'), 5000, 'non ema');
        randomFile(path.join(d, 'text_encoder/model.fp16.safetensors'), 60000, 'te fp16');
      }),
    );

    hub.addRepo(
      'test-org/sharded',
      makeRepo('sharded', (d) => {
        copyDir(sd21, d);
        fs.rmSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors'));
        const index = (shards) => JSON.stringify({ metadata: { total_size: 1 }, weight_map: { 'a.weight': shards[0], 'b.weight': shards[1], 'c.weight': shards[1] } });
        const plain = ['diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors'];
        const fp16 = ['diffusion_pytorch_model.fp16-00001-of-00002.safetensors', 'diffusion_pytorch_model.fp16-00002-of-00002.safetensors'];
        fs.writeFileSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors.index.json'), index(plain));
        fs.writeFileSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors.index.fp16.json'), index(fp16));
        for (const s of [...plain, ...fp16]) randomFile(path.join(d, 'unet', s), 40000, s);
      }),
    );

    hub.addRepo('test-org/tiny-taesd', taesd);
    hub.addRepo('test-org/private', taesd, { token: 'hf_secret' });
    hub.addRepo('test-org/gated', taesd, { gated: true });
    hub.addRepo('test-org/listed-but-missing', taesd, { extraSiblings: ['diffusion_pytorch_model.fp16.safetensors'] });
    hub.addRepo('test-org/evil-siblings', taesd, { extraSiblings: ['../../evil.json'] });
    hub.addRepo('test-org/evil-backslash', taesd, { extraSiblings: ['unet\\..\\..\\evil.json'] });
    hub.addRepo('test-org/evil-absolute', taesd, { extraSiblings: ['/tmp/evil.json'] });
    hub.addRepo(
      'test-org/evil-shards',
      makeRepo('evil-shards', (d) => {
        copyDir(sd21, d);
        fs.rmSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors'));
        fs.writeFileSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ weight_map: { 'a.weight': '../x.safetensors' } }));
        randomFile(path.join(d, 'x.safetensors'), 1000, 'x');
      }),
    );
    hub.addRepo(
      'test-org/shard-missing',
      makeRepo('shard-missing', (d) => {
        copyDir(taesd, d);
        fs.rmSync(path.join(d, 'diffusion_pytorch_model.safetensors'));
        fs.writeFileSync(path.join(d, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ weight_map: { w: 'diffusion_pytorch_model-00001-of-00001.safetensors' } }));
      }),
    );
    hub.addRepo(
      'test-org/only-bin',
      makeRepo('only-bin', (d) => {
        copyDir(sd21, d);
        fs.rmSync(path.join(d, 'unet/diffusion_pytorch_model.safetensors'));
        randomFile(path.join(d, 'unet/diffusion_pytorch_model.bin'), 3000, 'bin');
      }),
    );
    hub.addRepo('test-org/no-redirect', taesd, { redirectLfs: false });
    await hub.start();
  });

  after(async () => {
    if (hub) await hub.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  beforeEach(() => {
    savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
    for (const k of ENV_KEYS) delete process.env[k];
    process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
    process.env.HF_ENDPOINT = hub.endpoint;
    hub.reset();
  });

  afterEach(() => {
    for (const [k, v] of Object.entries(savedEnv)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  describe('hub: resolveModel', () => {
    it('returns an existing local folder or file untouched, without any request', async () => {
      const dir = fixture('models', 'tiny-sd21');
      assert.deepStrictEqual(await resolveModel(dir), { dir, downloaded: [] });
      const file = path.join(dir, 'model_index.json');
      assert.deepStrictEqual(await resolveModel(file), { dir: file, downloaded: [] });
      assert.strictEqual(hub.requests.length, 0);
    });

    it('downloads a pipeline into the Hugging Face cache layout; a second call transfers nothing', async () => {
      const id = 'test-org/tiny-sd21';
      const r = await resolveModel(id);
      const root = path.join(process.env.HF_HOME, 'hub', 'models--test-org--tiny-sd21');
      const commit = commitOf(id);
      assert.strictEqual(r.dir, path.join(root, 'snapshots', commit));
      assert.strictEqual(r.repoId, id);
      assert.strictEqual(r.revision, 'main');
      assert.strictEqual(r.commit, commit);
      assert.deepStrictEqual(r.downloaded, SD21_FILES);
      assert.deepStrictEqual(walk(r.dir), SD21_FILES);
      assert.strictEqual(fs.readFileSync(path.join(root, 'refs', 'main'), 'utf8'), commit);

      const src = path.join(reposDir, 'sd21');
      for (const f of SD21_FILES) {
        const p = path.join(r.dir, f);
        assert.ok(fs.lstatSync(p).isSymbolicLink(), `${f} is a symlink`);
        const target = fs.readlinkSync(p);
        assert.ok(!path.isAbsolute(target), 'relative link');
        const depth = f.split('/').length; // ../../blobs for top-level files, ../../../blobs one folder down
        assert.strictEqual(target, [...Array(depth + 1).fill('..'), 'blobs', path.basename(target)].join(path.sep));
        assert.ok(fs.readFileSync(p).equals(fs.readFileSync(path.join(src, f))), `${f} content`);
        if (f.endsWith('.safetensors')) assert.strictEqual(path.basename(target), sha256(fs.readFileSync(p)), 'LFS blob named by sha256 (X-Linked-Etag)');
      }
      const blobs = fs.readdirSync(path.join(root, 'blobs'));
      assert.ok(!blobs.some((b) => b.endsWith('.incomplete')));
      assert.strictEqual(blobs.length, SD21_FILES.length);
      // nothing else was asked for: no .bin / .onnx / .msgpack / .ckpt / README
      const asked = hub.log('hub', /\/resolve\//).map((q) => decodeURIComponent(q.url.split(`/resolve/${commit}/`)[1]));
      assert.deepStrictEqual([...new Set(asked)].sort(), SD21_FILES);
      assert.ok(hub.requests.every((q) => q.headers.authorization === undefined), 'no token, no Authorization');

      hub.reset();
      const again = await resolveModel(id);
      assert.strictEqual(again.dir, r.dir);
      assert.deepStrictEqual(again.downloaded, []);
      assert.strictEqual(hub.log('hub', /\/api\/models\//).length, 1);
      assert.strictEqual(hub.log('hub', /\/resolve\//).length, 0);
      assert.strictEqual(hub.log('cdn').length, 0);
    });

    it('uses HF_HUB_CACHE over HF_HOME, and relinks from existing blobs without transferring them', async () => {
      process.env.HF_HUB_CACHE = path.join(tmp, `cache-${homeCount}`);
      const r = await resolveModel('test-org/tiny-taesd');
      assert.ok(r.dir.startsWith(path.join(process.env.HF_HUB_CACHE, 'models--test-org--tiny-taesd', 'snapshots')));
      assert.ok(!fs.existsSync(path.join(process.env.HF_HOME, 'hub')));
      assert.deepStrictEqual(walk(r.dir), ['config.json', 'diffusion_pytorch_model.safetensors']);
      // a lost snapshot link is recreated from the blob: metadata only, no transfer
      fs.rmSync(path.join(r.dir, 'diffusion_pytorch_model.safetensors'));
      hub.reset();
      const again = await resolveModel('test-org/tiny-taesd');
      assert.deepStrictEqual(again.downloaded, []);
      assert.deepStrictEqual(walk(again.dir), ['config.json', 'diffusion_pytorch_model.safetensors']);
      assert.deepStrictEqual(hub.log('hub', /\/resolve\//).map((q) => q.method), ['HEAD']);
      assert.strictEqual(hub.log('cdn').length, 0);
    });

    it("variant 'fp16' takes only the fp16 weights where a component has them, the plain ones elsewhere; never both", async () => {
      const fp16 = await resolveModel('test-org/variant', { variant: 'fp16' });
      const files = walk(fp16.dir);
      const weights = files.filter((f) => f.endsWith('.safetensors'));
      assert.deepStrictEqual(weights, [
        'text_encoder/model.fp16.safetensors',
        'unet/diffusion_pytorch_model.fp16.safetensors',
        'vae/diffusion_pytorch_model.safetensors', // no fp16 file for the vae
      ]);
      assert.ok(files.includes('unet/config.json') && files.includes('tokenizer/vocab.json'));

      const plain = await resolveModel('test-org/variant');
      assert.strictEqual(plain.dir, fp16.dir, 'same commit, same snapshot');
      assert.deepStrictEqual(plain.downloaded, ['text_encoder/model.safetensors', 'unet/diffusion_pytorch_model.safetensors']);
      assert.ok(!plain.downloaded.some((f) => f.includes('fp16') || f.includes('non_ema')));
    });

    it('sharded weights: the index and every shard it names (the fp16 set with the variant)', async () => {
      const r = await resolveModel('test-org/sharded');
      assert.deepStrictEqual(
        walk(r.dir).filter((f) => f.startsWith('unet/')),
        [
          'unet/config.json',
          'unet/diffusion_pytorch_model-00001-of-00002.safetensors',
          'unet/diffusion_pytorch_model-00002-of-00002.safetensors',
          'unet/diffusion_pytorch_model.safetensors.index.json',
        ],
      );
      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      const v = await resolveModel('test-org/sharded', { variant: 'fp16' });
      assert.deepStrictEqual(
        walk(v.dir).filter((f) => f.startsWith('unet/')),
        [
          'unet/config.json',
          'unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors',
          'unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors',
          'unet/diffusion_pytorch_model.safetensors.index.fp16.json',
        ],
      );
    });

    it('a single-model repo (config.json + weights at the root, like TAESD)', async () => {
      const r = await resolveModel('test-org/tiny-taesd');
      assert.deepStrictEqual(walk(r.dir), ['config.json', 'diffusion_pytorch_model.safetensors']);
      const src = fixture('models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors');
      assert.ok(fs.readFileSync(path.join(r.dir, 'diffusion_pytorch_model.safetensors')).equals(fs.readFileSync(src)));
    });

    it('LFS files served directly (no CDN redirect) use the ETag', async () => {
      const r = await resolveModel('test-org/no-redirect');
      const link = fs.readlinkSync(path.join(r.dir, 'diffusion_pytorch_model.safetensors'));
      assert.strictEqual(path.basename(link), sha256(fs.readFileSync(fixture('models', 'tiny-taesd', 'diffusion_pytorch_model.safetensors'))));
    });

    it('components limits a pipeline to some folders; allowPatterns replaces the selection', async () => {
      const r = await resolveModel('test-org/tiny-sd21', { components: ['unet', 'scheduler'] });
      assert.deepStrictEqual(walk(r.dir), ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors']);
      await rejects(resolveModel('test-org/tiny-sd21', { components: ['safety_checker'] }), (e) => {
        assert.ok(e instanceof ArgumentError);
        assert.match(e.message, /safety_checker.*lists: scheduler, text_encoder, tokenizer, unet, vae/);
      });
      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      const j = await resolveModel('test-org/tiny-sd21', { allowPatterns: ['*.json'] });
      assert.ok(walk(j.dir).every((f) => f.endsWith('.json')));
      assert.strictEqual(walk(j.dir).length, 8);
    });

    it('reports progress per file', async () => {
      const events = [];
      const r = await resolveModel('test-org/tiny-sd21', { onProgress: (p) => events.push(p), components: ['unet'] });
      const done = events.filter((e) => e.done);
      assert.deepStrictEqual(done.map((e) => e.file).sort(), r.downloaded);
      for (const e of done) assert.strictEqual(e.downloaded, e.total);
      const w = done.find((e) => e.file === 'unet/diffusion_pytorch_model.safetensors');
      assert.strictEqual(w.total, 589200);
    });

    it('files with the same content (SDXL tokenizer/ and tokenizer_2/) share one blob and one transfer', async () => {
      hub.addRepo('test-org/tiny-sdxl', fixture('models', 'tiny-sdxl'));
      const r = await resolveModel('test-org/tiny-sdxl');
      for (const f of ['vocab.json', 'merges.txt']) {
        const a = fs.readlinkSync(path.join(r.dir, 'tokenizer', f));
        assert.strictEqual(fs.readlinkSync(path.join(r.dir, 'tokenizer_2', f)), a);
        assert.strictEqual(hub.log('hub', new RegExp(`/tokenizer(_2)?/${f.replace('.', '\\.')}$`)).filter((q) => q.method === 'GET').length, 1, f);
      }
      assert.ok(walk(r.dir).includes('text_encoder_2/model.safetensors'));
    });

    it('two concurrent calls for the same repo both succeed, transferring each file once', async () => {
      const [a, b] = await Promise.all([resolveModel('test-org/tiny-sd21'), resolveModel('test-org/tiny-sd21')]);
      assert.strictEqual(a.dir, b.dir);
      assert.deepStrictEqual(walk(a.dir), SD21_FILES);
      assert.deepStrictEqual([...a.downloaded, ...b.downloaded].sort(), SD21_FILES);
      const gets = [...hub.log('hub'), ...hub.log('cdn')].filter((q) => q.method === 'GET' && q.status === 200);
      assert.strictEqual(gets.length, 2 + SD21_FILES.length, '2 API answers + one transfer per file');
    });

    it('transfers at most `concurrency` files at once', async () => {
      hub.delay = 10;
      await resolveModel('test-org/tiny-sd21', { concurrency: 2 });
      assert.strictEqual(hub.maxActive, 2);
      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      hub.reset();
      hub.delay = 10;
      await resolveModel('test-org/tiny-sd21', { concurrency: 1 });
      assert.strictEqual(hub.maxActive, 1);
    });

    it('a stalled transfer times out (HF_HUB_DOWNLOAD_TIMEOUT) and is resumed', async () => {
      process.env.HF_HUB_DOWNLOAD_TIMEOUT = '0.3';
      try {
        const file = 'diffusion_pytorch_model.safetensors';
        hub.faults.stallAfter.set(file, 30000);
        const r = await resolveModel('test-org/tiny-taesd');
        assert.deepStrictEqual(hub.log('cdn').filter((q) => q.method === 'GET').map((q) => q.headers.range), [undefined, 'bytes=30000-']);
        assert.ok(fs.readFileSync(path.join(r.dir, file)).equals(fs.readFileSync(fixture('models', 'tiny-taesd', file))));
      } finally {
        delete process.env.HF_HUB_DOWNLOAD_TIMEOUT;
      }
    });

    it('retries a 5xx answer of the API', async () => {
      hub.faults.fail.set('api', [503]);
      const r = await resolveModel('test-org/tiny-taesd');
      assert.ok(fs.existsSync(path.join(r.dir, 'config.json')));
      assert.deepStrictEqual(hub.log('hub', /\/api\//).map((q) => q.status), [503, 200]);
    });
  });

  describe('hub: errors', () => {
    it('404: unknown repository, revision or file', async () => {
      await rejects(resolveModel('test-org/nope'), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_NOT_FOUND', /no such repository: test-org\/nope/));
      await rejects(resolveModel('test-org/tiny-taesd', { revision: 'v9' }), (e) => {
        assertHubError(e, 'ERR_ONESTEP_HUB_NOT_FOUND', /no such revision 'v9' in test-org\/tiny-taesd/);
        assert.strictEqual(e.status, 404);
      });
      await rejects(resolveModel('test-org/listed-but-missing', { variant: 'fp16' }), (e) => {
        assertHubError(e, 'ERR_ONESTEP_HUB_NOT_FOUND', /no such file diffusion_pytorch_model\.fp16\.safetensors in test-org\/listed-but-missing/);
        assert.strictEqual(e.file, 'diffusion_pytorch_model.fp16.safetensors');
      });
      await rejects(resolveModel('test-org/shard-missing'), (e) =>
        assertHubError(e, 'ERR_ONESTEP_HUB_NOT_FOUND', /diffusion_pytorch_model-00001-of-00001\.safetensors.*named by diffusion_pytorch_model\.safetensors\.index\.json/),
      );
      assert.ok(!fs.existsSync(path.join(repoRoot('test-org/shard-missing'), 'snapshots')), 'no partial snapshot');
    });

    it('401: a private repository needs a token; HF_TOKEN, { token } and HF_HOME/token work, and the token never reaches the CDN', async () => {
      await rejects(resolveModel('test-org/private'), (e) => {
        assertHubError(e, 'ERR_ONESTEP_HUB_UNAUTHORIZED', /this repository needs a token \(set HF_TOKEN or pass \{ token \}\)/);
        assert.strictEqual(e.status, 401);
      });

      process.env.HF_TOKEN = 'hf_secret';
      const r = await resolveModel('test-org/private');
      assert.deepStrictEqual(walk(r.dir), ['config.json', 'diffusion_pytorch_model.safetensors']);
      const hubReqs = hub.log('hub').filter((q) => q.status !== 401);
      assert.ok(hubReqs.length >= 3);
      for (const q of hubReqs) assert.strictEqual(q.headers.authorization, 'Bearer hf_secret', q.url);
      const cdn = hub.log('cdn');
      assert.ok(cdn.length >= 1, 'the weights came through the redirect');
      for (const q of cdn) assert.strictEqual(q.headers.authorization, undefined, 'Authorization dropped on the cross-origin redirect');

      delete process.env.HF_TOKEN;
      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      await resolveModel('test-org/private', { token: 'hf_secret' });
      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      fs.mkdirSync(process.env.HF_HOME, { recursive: true });
      fs.writeFileSync(path.join(process.env.HF_HOME, 'token'), 'hf_secret\n');
      await resolveModel('test-org/private');
      await rejects(resolveModel('test-org/private', { token: false, revision: 'main' }), (e) => {
        // token: false sends none; the cached snapshot is not consulted for an auth failure
        assertHubError(e, 'ERR_ONESTEP_HUB_UNAUTHORIZED');
      });
      await rejects(resolveModel('test-org/private', { token: 'hf_wrong' }), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_UNAUTHORIZED', /refused the token/));
      await rejects(resolveModel('test-org/gated', { token: 'hf_any' }), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_UNAUTHORIZED', /gated.*accept its conditions/));
    });

    it('a connection dropped mid-file is resumed with Range; the file ends byte-identical and sha256-checked', async () => {
      const file = 'unet/diffusion_pytorch_model.safetensors';
      hub.faults.dropAfter.set(file, 50000);
      const r = await resolveModel('test-org/tiny-sd21', { components: ['unet'] });
      const gets = hub.log('cdn', new RegExp(encodeURIComponent(file).replace(/\./g, '\\.'))).filter((q) => q.method === 'GET');
      assert.strictEqual(gets.length, 2, 'one retry');
      assert.strictEqual(gets[0].headers.range, undefined);
      assert.strictEqual(gets[1].headers.range, 'bytes=50000-');
      assert.strictEqual(gets[1].status, 206);
      const got = fs.readFileSync(path.join(r.dir, file));
      assert.ok(got.equals(fs.readFileSync(fixture('models', 'tiny-sd21', file))));
      assert.strictEqual(path.basename(fs.readlinkSync(path.join(r.dir, file))), sha256(got));
    });

    it('resumes a partial blob left by an earlier run; a bad partial is discarded and fetched again', async () => {
      const file = 'vae/diffusion_pytorch_model.safetensors';
      const data = fs.readFileSync(fixture('models', 'tiny-sd21', file));
      const blobs = path.join(repoRoot('test-org/tiny-sd21'), 'blobs');
      fs.mkdirSync(blobs, { recursive: true });
      fs.writeFileSync(path.join(blobs, `${sha256(data)}.incomplete`), data.subarray(0, 1000));
      const r = await resolveModel('test-org/tiny-sd21', { components: ['vae'] });
      const gets = hub.log('cdn').filter((q) => q.method === 'GET');
      assert.deepStrictEqual(gets.map((q) => q.headers.range), ['bytes=1000-']);
      assert.ok(fs.readFileSync(path.join(r.dir, file)).equals(data));

      process.env.HF_HOME = path.join(tmp, `home-${++homeCount}`);
      hub.reset();
      const blobs2 = path.join(repoRoot('test-org/tiny-sd21'), 'blobs');
      fs.mkdirSync(blobs2, { recursive: true });
      fs.writeFileSync(path.join(blobs2, `${sha256(data)}.incomplete`), Buffer.alloc(1000, 7));
      const r2 = await resolveModel('test-org/tiny-sd21', { components: ['vae'] });
      assert.deepStrictEqual(hub.log('cdn').filter((q) => q.method === 'GET').map((q) => q.headers.range), ['bytes=1000-', undefined]);
      assert.ok(fs.readFileSync(path.join(r2.dir, file)).equals(data));
    });

    it('a corrupted transfer (content not matching the sha256 etag) is a typed error and leaves nothing in snapshots', async () => {
      const file = 'unet/diffusion_pytorch_model.safetensors';
      hub.faults.corrupt.add(file);
      await rejects(resolveModel('test-org/tiny-sd21'), (e) => {
        assertHubError(e, 'ERR_ONESTEP_HUB_INTEGRITY', /sha256 .* does not match/);
        assert.strictEqual(e.file, file);
      });
      const root = repoRoot('test-org/tiny-sd21');
      assert.ok(!fs.existsSync(path.join(root, 'snapshots')) || walk(path.join(root, 'snapshots')).length === 0, 'no snapshot files');
      assert.ok(!fs.existsSync(path.join(root, 'refs')), 'no ref');
      const sha = sha256(fs.readFileSync(fixture('models', 'tiny-sd21', file)));
      assert.ok(!fs.existsSync(path.join(root, 'blobs', sha)));
      assert.ok(!fs.existsSync(path.join(root, 'blobs', `${sha}.incomplete`)));
    });

    it('refuses hostile file names from the file list or a weight index, writing nothing outside the cache', async () => {
      const before = tree(tmp, [process.env.HF_HOME]);
      for (const [id, re] of [
        ['test-org/evil-siblings', /"\.\.\/\.\.\/evil\.json".*'\.\.' segment/],
        ['test-org/evil-backslash', /backslash/],
        ['test-org/evil-absolute', /absolute/],
        ['test-org/evil-shards', /"\.\.\/x\.safetensors"/],
      ]) {
        await rejects(resolveModel(id), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_UNSAFE_PATH', re));
        const snaps = path.join(repoRoot(id), 'snapshots');
        assert.ok(!fs.existsSync(snaps) || walk(snaps).length === 0, `${id}: nothing in snapshots`);
      }
      assert.deepStrictEqual(tree(tmp, [process.env.HF_HOME]), before, 'nothing written outside HF_HOME');
      const all = walk(process.env.HF_HOME);
      assert.ok(!all.some((f) => f.endsWith('evil.json') || f.endsWith('/x.safetensors')), all.join('\n'));
      assert.ok(!hub.requests.some((q) => /evil\.json|\/x\.safetensors/.test(q.url)), 'never asked for them');
    });

    it('refuses odd repo ids, revisions and variants; a missing path is FileNotFoundError', async () => {
      for (const id of ['test-org/na me', 'test-org/..', 'test-org/a--b', '-org/x', 'org/x.git', 'org/na$me', 'org/', 'o\u00e9/x']) {
        await rejects(resolveModel(id), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_INVALID_ID'));
      }
      for (const revision of ['../x', 'a/../../b', 'main\n', '/main', 'a b', 'x/']) {
        await rejects(resolveModel('test-org/tiny-taesd', { revision }), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_INVALID_ID', /revision/));
      }
      await rejects(resolveModel('test-org/tiny-taesd', { variant: '../fp16' }), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_INVALID_ID', /variant/));
      for (const p of ['./no/such/dir', '/no/such/dir', 'a/b/c', 'nofolder']) {
        await rejects(resolveModel(p), (e) => assert.ok(e instanceof FileNotFoundError, e.message));
      }
      assert.strictEqual(hub.requests.length, 0);
    });

    it('a component with only .bin weights is refused with a clear error', async () => {
      await rejects(resolveModel('test-org/only-bin'), (e) =>
        assertHubError(e, 'ERR_ONESTEP_HUB_NO_SAFETENSORS', /unet\/ has no safetensors weights.*diffusion_pytorch_model\.bin/),
      );
    });
  });

  describe('hub: offline', () => {
    it('HF_HUB_OFFLINE=1 resolves from the cache without any request', async () => {
      const r = await resolveModel('test-org/tiny-sd21');
      hub.reset();
      process.env.HF_HUB_OFFLINE = '1';
      const o = await resolveModel('test-org/tiny-sd21');
      assert.strictEqual(o.dir, r.dir);
      assert.strictEqual(o.commit, r.commit);
      assert.deepStrictEqual(o.downloaded, []);
      assert.strictEqual(o.offline, true);
      delete process.env.HF_HUB_OFFLINE;
      const byOption = await resolveModel('test-org/tiny-sd21', { offline: true, revision: r.commit });
      assert.strictEqual(byOption.dir, r.dir);
      assert.strictEqual(hub.requests.length, 0);
    });

    it('offline with an empty cache, or without a needed file, is ERR_ONESTEP_HUB_OFFLINE', async () => {
      process.env.HF_HUB_OFFLINE = 'true';
      await rejects(resolveModel('test-org/tiny-sd21'), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_OFFLINE', /not in the cache.*HF_HUB_OFFLINE/));
      delete process.env.HF_HUB_OFFLINE;
      const r = await resolveModel('test-org/tiny-sd21', { components: ['unet', 'vae'] });
      fs.rmSync(path.join(r.dir, 'vae', 'diffusion_pytorch_model.safetensors'));
      await rejects(resolveModel('test-org/tiny-sd21', { offline: true, components: ['vae'] }), (e) =>
        assertHubError(e, 'ERR_ONESTEP_HUB_OFFLINE', /vae\/ has no safetensors weights/),
      );
      // the full pipeline needs text_encoder/ too, which was never downloaded
      await rejects(resolveModel('test-org/tiny-sd21', { offline: true }), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_OFFLINE', /scheduler\/|text_encoder\/|tokenizer\//));
      assert.strictEqual(hub.log('hub', /\/api\//).length, 1);
    });

    it('falls back to a complete cached snapshot when the hub cannot be reached', async () => {
      const r = await resolveModel('test-org/tiny-taesd');
      process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // nothing listens on the discard port
      const o = await resolveModel('test-org/tiny-taesd');
      assert.strictEqual(o.dir, r.dir);
      assert.strictEqual(o.offline, true);
      await rejects(resolveModel('test-org/tiny-sd21'), (e) => assertHubError(e, 'ERR_ONESTEP_HUB_NETWORK', /ECONNREFUSED/));
    });
  });

  describe('hub: abort', () => {
    it('an AbortSignal stops a transfer with an AbortError-like HubError', async () => {
      const file = 'unet/diffusion_pytorch_model.safetensors';
      hub.faults.slow.set(file, 50);
      const ac = new AbortController();
      const t0 = Date.now();
      const p = resolveModel('test-org/tiny-sd21', {
        signal: ac.signal,
        onProgress: (e) => {
          if (e.file === file && e.downloaded > 0) ac.abort(new Error('user stop'));
        },
      });
      await rejects(p, (e) => {
        assert.ok(e instanceof HubAbortError, e.stack);
        assertHubError(e, 'ERR_ONESTEP_HUB_ABORTED');
        assert.strictEqual(e.name, 'AbortError');
        assert.strictEqual(e.cause.message, 'user stop');
      });
      assert.ok(Date.now() - t0 < 1500, 'stopped promptly');
      const snaps = path.join(repoRoot('test-org/tiny-sd21'), 'snapshots');
      assert.ok(!fs.existsSync(snaps) || walk(snaps).length === 0);

      hub.reset();
      const already = AbortSignal.abort();
      await rejects(resolveModel('test-org/tiny-sd21', { signal: already }), (e) => assert.ok(e instanceof HubAbortError));
      assert.strictEqual(hub.requests.length, 0);
    });
  });
});
