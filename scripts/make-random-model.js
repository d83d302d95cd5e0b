#!/usr/bin/env node
// Writes a random-weight model in a real architecture, in the diffusers folder layout with F16
// safetensors, deterministic from a seed: the same FLOPs and bytes as the published checkpoints
// (which cannot be downloaded here), for benchmarks. The architecture comes from a config folder
// laid out like ../shared/fixtures/configs/<name>; the weight names and shapes are those our own
// model code reads (it is run in recording mode), so the result loads exactly like a real model.
//   node scripts/make-random-model.js --config sd_turbo --out .cache/random-models/sd_turbo [--base sd15] [--seed 0] [--dtype F16]
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.join(__dirname, '..', 'dist');
const { addon } = require(path.join(dist, 'native.js'));
const { saveSafetensorsStreaming } = require(path.join(dist, 'safetensors'));
const { Weights } = require(path.join(dist, 'models', 'weights.js'));
const { CLIPTextModel } = require(path.join(dist, 'models', 'clip', 'text_encoder.js'));
const { readCLIPTextConfig } = require(path.join(dist, 'models', 'clip', 'config.js'));
const { UNet2DConditionModel } = require(path.join(dist, 'models', 'unet', 'unet.js'));
const { readUNetConfig } = require(path.join(dist, 'models', 'unet', 'config.js'));
const { AutoencoderKL } = require(path.join(dist, 'models', 'vae', 'autoencoder_kl.js'));
const { AutoencoderTiny } = require(path.join(dist, 'models', 'vae', 'autoencoder_tiny.js'));
const { readAutoencoderKLConfig, readAutoencoderTinyConfig } = require(path.join(dist, 'models', 'vae', 'config.js'));
const { ControlNetModel } = require(path.join(dist, 'models', 'controlnet', 'controlnet.js'));
const { readControlNetConfig } = require(path.join(dist, 'models', 'controlnet', 'config.js'));

const FIXTURES = path.resolve(__dirname, '..', '..', 'shared', 'fixtures');

function hash(str) {
  let h = 2166136261;
  for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The distribution of one weight: norm scales 1, biases small, matrices 1/sqrt(fan_in). */
function distribution(name, shape) {
  if (shape.length === 1) {
    return /(^|\.)(norm\w*|layer_norm\d*|final_layer_norm|group_norm|conv_norm_out)\.weight$/.test(name) ? { mean: 1, std: 0 } : { mean: 0, std: 0.02 };
  }
  if (/embedding\.weight$|time_proj\.weight$/.test(name)) return { mean: 0, std: 0.02 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { mean: 0, std: 1 / Math.sqrt(fanIn) };
}

function record(kind, dir) {
  const w = Weights.recording(kind);
  let model;
  if (kind === 'clip') model = new CLIPTextModel(readCLIPTextConfig(dir), w);
  else if (kind === 'unet') model = new UNet2DConditionModel(readUNetConfig(dir), w);
  else if (kind === 'vae') model = new AutoencoderKL(readAutoencoderKLConfig(dir), w);
  else if (kind === 'taesd') model = new AutoencoderTiny(readAutoencoderTinyConfig(dir), w);
  else if (kind === 'controlnet') model = new ControlNetModel(readControlNetConfig(dir), w);
  model.buildGraphs();
  return w.recordedShapes();
}

function classOf(cfg) {
  if (cfg._class_name) return cfg._class_name;
  if (Array.isArray(cfg.architectures)) return cfg.architectures[0];
  return undefined;
}

const KIND = {
  UNet2DConditionModel: 'unet',
  AutoencoderKL: 'vae',
  AutoencoderTiny: 'taesd',
  CLIPTextModel: 'clip',
  CLIPTextModelWithProjection: 'clip',
  ControlNetModel: 'controlnet',
};

/** The UNet config fields a ControlNet copies (diffusers' ControlNetModel.from_unet). */
const FROM_UNET = ['in_channels', 'flip_sin_to_cos', 'freq_shift', 'down_block_types', 'only_cross_attention', 'block_out_channels', 'layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'act_fn', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'transformer_layers_per_block', 'attention_head_dim', 'use_linear_projection', 'addition_embed_type', 'addition_time_embed_dim', 'projection_class_embeddings_input_dim', 'upcast_attention', 'resnet_time_scale_shift'];

/**
 * A random-weight ControlNet for the UNet of configs/<config>: its config as ControlNetModel.from_unet
 * makes it (conditioning_embedding_out_channels diffusers' default, 16, 32, 96, 256), in `out`.
 */
function makeRandomControlNet({ config, out, seed = 0, dtype = 'F16', configsDir = path.join(FIXTURES, 'configs'), log = console.log }) {
  const unetCfg = JSON.parse(fs.readFileSync(path.join(configsDir, config, 'unet', 'config.json'), 'utf8'));
  const cfg = { _class_name: 'ControlNetModel', conditioning_channels: 3, controlnet_conditioning_channel_order: 'rgb', conditioning_embedding_out_channels: [16, 32, 96, 256] };
  for (const k of FROM_UNET) if (unetCfg[k] !== undefined) cfg[k] = unetCfg[k];
  const tmp = path.join(out, '.config-src');
  fs.mkdirSync(tmp, { recursive: true });
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(cfg, null, 2));
  writeComponent(tmp, out, { seed, dtype, log });
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.writeFileSync(path.join(out, 'RANDOM_WEIGHTS.txt'), `Random weights (seed ${seed}, ${dtype}): a ControlNet for the UNet of configs/${config} (ControlNetModel.from_unet). Not a usable model: for benchmarks only.\n`);
}

function writeComponent(srcDir, outDir, { seed, dtype, log }) {
  fs.mkdirSync(outDir, { recursive: true });
  const cfgPath = path.join(srcDir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(cfg, null, 2));
  const kind = KIND[classOf(cfg)];
  if (!kind) throw new Error(`${cfgPath}: no generator for ${classOf(cfg)}`);
  const shapes = record(kind, outDir);
  const file = path.join(outDir, kind === 'clip' ? 'model.safetensors' : 'diffusion_pytorch_model.safetensors');
  let bytes = 0;
  const tensors = [...shapes].map(([name, shape]) => {
    bytes += shape.reduce((a, b) => a * b, 1) * 2;
    return {
      name,
      dtype,
      shape,
      bytes: () => {
        const d = distribution(name, shape);
        const t = addon().randomTensor(dtype, shape, (seed * 7919 + hash(name)) >>> 0, d.mean, d.std);
        const b = t.bytes();
        t.dispose();
        return b;
      },
    };
  });
  const t0 = Date.now();
  saveSafetensorsStreaming(file, tensors, { format: 'pt', onestep_random_weights: `seed ${seed}` });
  log(`  ${path.relative(process.cwd(), file)}: ${tensors.length} tensors, ${(bytes / 2 ** 30).toFixed(2)} GiB (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return { kind, cfg };
}

function writeTokenizer(outDir, padToken) {
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(FIXTURES, 'tokenizer', f), path.join(outDir, f));
  fs.writeFileSync(path.join(outDir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'CLIPTokenizer', model_max_length: 77, do_lower_case: true, bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: padToken }, null, 2));
  fs.writeFileSync(path.join(outDir, 'special_tokens_map.json'), JSON.stringify({ bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: padToken }, null, 2));
}

/**
 * Writes configs/<name> (with components missing there taken from configs/<base>) to `out`.
 * Returns the components written.
 */
function makeRandomModel({ config, base, out, seed = 0, dtype = 'F16', configsDir = path.join(FIXTURES, 'configs'), log = console.log }) {
  const src = path.join(configsDir, config);
  if (!fs.existsSync(src)) throw new Error(`no config folder ${src}`);
  const dirs = new Map();
  for (const d of [base, config].filter(Boolean)) {
    for (const comp of fs.readdirSync(path.join(configsDir, d))) dirs.set(comp, path.join(configsDir, d, comp));
  }
  fs.mkdirSync(out, { recursive: true });
  const components = {};
  for (const [comp, dir] of [...dirs].sort()) {
    if (comp === 'scheduler') {
      fs.mkdirSync(path.join(out, comp), { recursive: true });
      fs.copyFileSync(path.join(dir, 'scheduler_config.json'), path.join(out, comp, 'scheduler_config.json'));
      components[comp] = ['diffusers', JSON.parse(fs.readFileSync(path.join(dir, 'scheduler_config.json'), 'utf8'))._class_name];
      continue;
    }
    if (!fs.existsSync(path.join(dir, 'config.json'))) continue;
    const { kind, cfg } = writeComponent(dir, path.join(out, comp), { seed, dtype, log });
    components[comp] = [kind === 'clip' ? 'transformers' : 'diffusers', classOf(cfg)];
    if (kind === 'clip') {
      // OpenCLIP towers (gelu) come with the tokenizer that pads with "!"; OpenAI CLIP pads with EOS
      const tok = comp === 'text_encoder_2' ? 'tokenizer_2' : 'tokenizer';
      writeTokenizer(path.join(out, tok), cfg.hidden_act === 'gelu' ? '!' : '<|endoftext|>');
      components[tok] = ['transformers', 'CLIPTokenizer'];
    }
  }
  const single = Object.keys(components).length === 1 && components.vae && components.vae[1] === 'AutoencoderTiny';
  if (single) {
    // TAESD repos are a single model folder
    for (const f of fs.readdirSync(path.join(out, 'vae'))) fs.renameSync(path.join(out, 'vae', f), path.join(out, f));
    fs.rmdirSync(path.join(out, 'vae'));
  } else {
    const pipeline = components.text_encoder_2 ? 'StableDiffusionXLPipeline' : 'StableDiffusionPipeline';
    fs.writeFileSync(path.join(out, 'model_index.json'), JSON.stringify({ _class_name: pipeline, _diffusers_version: '0.27.2', ...components }, null, 2));
  }
  fs.writeFileSync(path.join(out, 'RANDOM_WEIGHTS.txt'), `Random weights (seed ${seed}, ${dtype}) in the architecture of configs/${config}${base ? ` over configs/${base}` : ''}. Not a usable model: for benchmarks only.\n`);
  return components;
}

/**
 * The benchmarks' random-weight model `config` under `cacheDir` (written once, then reused; delete
 * the folder to free the space). Returns its folder.
 */
function ensureRandomModel(config, cacheDir, log = console.log) {
  const dir = path.join(cacheDir, config);
  if (!fs.existsSync(path.join(dir, 'RANDOM_WEIGHTS.txt'))) {
    log(`writing the random-weight ${config} model to ${dir} (once; reused by later runs; delete the folder to free the space)`);
    makeRandomModel({ config, out: dir, log });
  } else {
    log(`reusing ${dir}`);
  }
  return dir;
}

module.exports = { makeRandomModel, makeRandomControlNet, ensureRandomModel };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const config = opt('config');
  if (!config) {
    console.error('usage: node scripts/make-random-model.js --config NAME --out DIR [--base NAME] [--seed N] [--dtype F16|BF16|F32] [--configs DIR]');
    process.exit(2);
  }
  const out = opt('out', path.join('.cache', 'random-models', config));
  console.log(`writing a random-weight ${config} to ${out}`);
  makeRandomModel({ config, base: opt('base'), out, seed: Number(opt('seed', 0)), dtype: opt('dtype', 'F16'), configsDir: opt('configs', path.join(FIXTURES, 'configs')) });
}
