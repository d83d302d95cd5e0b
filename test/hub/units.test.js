// The pure parts of the hub client: file selection, patterns, ids, settings, the progress bar.
'use strict';
const assert = require('assert');
const os = require('os');
const path = require('path');
const { chooseWeights, globToRegExp, planFolder, pipelineComponents } = require('../../dist/hub/select');
const { isRepoId, unsafeReason, checkShardName } = require('../../dist/hub/validate');
const env = require('../../dist/hub/env');
const { normalizeEtag } = require('../../dist/hub/download');
const { createProgressBar, formatBytes, hubCacheDir, hubEndpoint } = require('../../dist/hub');

describe('hub: weight selection', () => {
  const names = [
    'config.json',
    'diffusion_pytorch_model.bin',
    'diffusion_pytorch_model.fp16.bin',
    'diffusion_pytorch_model.safetensors',
    'diffusion_pytorch_model.fp16.safetensors',
    'diffusion_pytorch_model.non_ema.safetensors',
  ];

  it('one set: the variant when present, else the plain one', () => {
    assert.deepStrictEqual(chooseWeights(names, 'fp16'), { file: 'diffusion_pytorch_model.fp16.safetensors', index: false, variant: 'fp16' });
    assert.deepStrictEqual(chooseWeights(names, undefined), { file: 'diffusion_pytorch_model.safetensors', index: false, variant: undefined });
    assert.deepStrictEqual(chooseWeights(names, 'bf16'), { file: 'diffusion_pytorch_model.safetensors', index: false, variant: undefined });
    assert.strictEqual(chooseWeights(['diffusion_pytorch_model.bin'], undefined), undefined);
  });

  it('sharded sets by their index, both diffusers index namings', () => {
    const sharded = [
      'model.safetensors.index.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.fp16.json',
      'model.fp16-00001-of-00002.safetensors',
    ];
    assert.deepStrictEqual(chooseWeights(sharded, undefined), { file: 'model.safetensors.index.json', index: true, variant: undefined });
    assert.deepStrictEqual(chooseWeights(sharded, 'fp16'), { file: 'model.safetensors.index.fp16.json', index: true, variant: 'fp16' });
    assert.deepStrictEqual(chooseWeights(['model.fp16.safetensors.index.json'], 'fp16'), { file: 'model.fp16.safetensors.index.json', index: true, variant: 'fp16' });
    // shards alone are never a set
    assert.strictEqual(chooseWeights(['model-00001-of-00002.safetensors'], undefined), undefined);
  });

  it('prefers the loader base names, then any other', () => {
    assert.strictEqual(chooseWeights(['adapter.safetensors', 'model.safetensors'], undefined).file, 'model.safetensors');
    assert.strictEqual(chooseWeights(['adapter.safetensors'], undefined).file, 'adapter.safetensors');
  });

  it('a component folder gives its json/txt/model files and one weight set; the repo root only json', () => {
    const files = [
      'model_index.json',
      'README.md',
      'tokenizer/vocab.json',
      'tokenizer/merges.txt',
      'tokenizer/spiece.model',
      'unet/config.json',
      'unet/diffusion_pytorch_model.safetensors',
      'unet/diffusion_pytorch_model.bin',
      'unet/sub/extra.json',
    ];
    assert.deepStrictEqual(planFolder(files, 'tokenizer', undefined).files, ['tokenizer/merges.txt', 'tokenizer/spiece.model', 'tokenizer/vocab.json']);
    const unet = planFolder(files, 'unet', 'fp16');
    assert.deepStrictEqual(unet.files, ['unet/config.json', 'unet/diffusion_pytorch_model.safetensors']);
    assert.deepStrictEqual(unet.unsupported, ['diffusion_pytorch_model.bin']);
    assert.strictEqual(unet.needsWeights, true);
    assert.deepStrictEqual(planFolder(files, '', undefined).files, ['model_index.json']);
    assert.strictEqual(planFolder(files, 'vae', undefined).empty, true);
  });

  it('model_index.json: components with [library, class], skipping nulls and settings', () => {
    const mi = {
      _class_name: 'X',
      unet: ['diffusers', 'UNet2DConditionModel'],
      safety_checker: [null, null],
      feature_extractor: [null, 'CLIPImageProcessor'],
      requires_safety_checker: false,
      vae: ['diffusers', 'AutoencoderKL'],
    };
    assert.deepStrictEqual(pipelineComponents(mi, 'r'), ['unet', 'vae']);
    assert.throws(() => pipelineComponents({ '../x': ['a', 'b'] }, 'r'), (e) => e.code === 'ERR_ONESTEP_HUB_UNSAFE_PATH');
    assert.throws(() => pipelineComponents([1], 'r'), (e) => e.code === 'ERR_ONESTEP_HUB_INVALID_REPO');
  });

  it('allowPatterns are fnmatch patterns', () => {
    const m = (p, s) => globToRegExp(p).test(s);
    assert.ok(m('*.json', 'unet/config.json'), "'*' crosses '/' as in fnmatch");
    assert.ok(m('unet/*', 'unet/a.safetensors'));
    assert.ok(m('unet/', 'unet/a.safetensors'));
    assert.ok(!m('unet/*', 'vae/a.safetensors'));
    assert.ok(m('model.fp1?.safetensors', 'model.fp16.safetensors'));
    assert.ok(m('[tv]*', 'vae/x') && !m('[!tv]*', 'vae/x'));
    assert.ok(!m('a.json', 'aXjson'), "'.' is literal");
  });
});

describe('hub: validation', () => {
  it('repo ids', () => {
    for (const ok of ['stabilityai/sd-turbo', 'madebyollin/taesd', 'a/b', 'Org_1/name.v2', 'org/_x_']) assert.ok(isRepoId(ok), ok);
    for (const bad of ['sd-turbo', 'a/b/c', '../b', 'a/..', 'a/.b', 'a/b-', 'a--b/c', 'a/b.git', 'a/b c', '/a/b', 'a/', `a/${'x'.repeat(97)}`]) {
      assert.ok(!isRepoId(bad), bad);
    }
  });

  it('repo paths and shard names', () => {
    assert.strictEqual(unsafeReason('unet/config.json'), undefined);
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'C:/x', 'a\\b', 'a//b', './a', 'a/', '', 'a\u0000b']) assert.ok(unsafeReason(bad), JSON.stringify(bad));
    assert.strictEqual(checkShardName('model-00001-of-00002.safetensors', 'i'), 'model-00001-of-00002.safetensors');
    for (const bad of ['../x.safetensors', 'sub/x.safetensors', 'x.bin', 7, null]) {
      assert.throws(() => checkShardName(bad, 'i'), (e) => e.code === 'ERR_ONESTEP_HUB_UNSAFE_PATH');
    }
  });

  it('etags as huggingface_hub normalizes them', () => {
    assert.strictEqual(normalizeEtag('"abc"'), 'abc');
    assert.strictEqual(normalizeEtag('W/"abc"'), 'abc');
    assert.strictEqual(normalizeEtag('abc'), 'abc');
  });
});

describe('hub: settings', () => {
  const KEYS = ['HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'XDG_CACHE_HOME', 'HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_OFFLINE'];
  let saved;
  beforeEach(() => {
    saved = Object.fromEntries(KEYS.map((k) => [k, process.env[k]]));
    for (const k of KEYS) delete process.env[k];
  });
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('cache folder: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME or ~/.cache', () => {
    assert.strictEqual(hubCacheDir(), path.join(os.homedir(), '.cache', 'huggingface', 'hub'));
    process.env.XDG_CACHE_HOME = '/x/cache';
    assert.strictEqual(hubCacheDir(), path.resolve('/x/cache/huggingface/hub'));
    process.env.HF_HOME = '~/hf';
    assert.strictEqual(hubCacheDir(), path.join(os.homedir(), 'hf', 'hub'));
    process.env.HF_HUB_CACHE = '/y/hub';
    assert.strictEqual(hubCacheDir(), path.resolve('/y/hub'));
  });

  it('endpoint: HF_ENDPOINT without trailing slash, else huggingface.co', () => {
    assert.strictEqual(hubEndpoint(), 'https://huggingface.co');
    process.env.HF_ENDPOINT = 'https://hf-mirror.example/';
    assert.strictEqual(hubEndpoint(), 'https://hf-mirror.example');
  });

  it('token: option, else HF_TOKEN, else HF_TOKEN_PATH / HF_HOME/token; false sends none', () => {
    const fs = require('fs');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onestep-hub-token-'));
    try {
      process.env.HF_HOME = dir;
      assert.strictEqual(env.hubToken(undefined), undefined);
      fs.writeFileSync(path.join(dir, 'token'), ' hf_file \n');
      assert.strictEqual(env.hubToken(undefined), 'hf_file');
      process.env.HF_TOKEN_PATH = path.join(dir, 'other');
      fs.writeFileSync(process.env.HF_TOKEN_PATH, 'hf_other');
      assert.strictEqual(env.hubToken(undefined), 'hf_other');
      process.env.HF_TOKEN = 'hf_env';
      assert.strictEqual(env.hubToken(undefined), 'hf_env');
      assert.strictEqual(env.hubToken('hf_opt'), 'hf_opt');
      assert.strictEqual(env.hubToken(false), undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('HF_HUB_OFFLINE accepts 1 / ON / YES / TRUE', () => {
    for (const v of ['1', 'on', 'YES', 'true']) {
      process.env.HF_HUB_OFFLINE = v;
      assert.strictEqual(env.offlineFromEnv(), true, v);
    }
    for (const v of ['0', 'false', '']) {
      process.env.HF_HUB_OFFLINE = v;
      assert.strictEqual(env.offlineFromEnv(), false, v);
    }
  });
});

describe('hub: createProgressBar', () => {
  function sink(isTTY) {
    const s = { isTTY, columns: 60, out: '', write(c) { s.out += c; return true; } };
    return s;
  }

  it('off a TTY: one line per finished file, nothing else', () => {
    const s = sink(false);
    const bar = createProgressBar(s);
    bar.update({ file: 'unet/w.safetensors', downloaded: 10, total: 2_500_000, done: false });
    bar.update({ file: 'unet/w.safetensors', downloaded: 2_500_000, total: 2_500_000, done: true });
    bar.update({ file: 'vae/config.json', downloaded: 641, total: 641, done: true });
    bar.finish();
    assert.strictEqual(s.out, 'unet/w.safetensors 2.5 MB\nvae/config.json 641 B\n');
  });

  it('on a TTY: a live line redrawn in place, cleared at the end', () => {
    const s = sink(true);
    const bar = createProgressBar(s);
    bar.update({ file: 'unet/' + 'long_name_'.repeat(10) + '.safetensors', downloaded: 500, total: 1000, done: false });
    assert.match(s.out, /^\r\[#{10}-{10}\]  50% 500 B\/1\.0 kB …/);
    assert.ok(s.out.split('\x1b[K')[0].length <= 60, 'fits the terminal width');
    bar.update({ file: 'unet/x', downloaded: 1000, total: 1000, done: true });
    bar.finish();
    assert.ok(s.out.endsWith('\r\x1b[K'));
  });

  it('formats sizes', () => {
    assert.strictEqual(formatBytes(999), '999 B');
    assert.strictEqual(formatBytes(1500), '1.5 kB');
    assert.strictEqual(formatBytes(3.44e9), '3.4 GB');
  });
});
