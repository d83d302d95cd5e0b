// The real architectures, built from the published configs in recording mode (no weights), have
// exactly the parameter counts and multiply-accumulates of the reference cost table
// (../shared/fixtures/configs/cost.json, counted by hooks on the real diffusers modules).
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const { Weights } = require('../../dist/models/weights');
const { CLIPTextModel } = require('../../dist/models/clip/text_encoder');
const { readCLIPTextConfig } = require('../../dist/models/clip/config');
const { UNet2DConditionModel } = require('../../dist/models/unet/unet');
const { readUNetConfig } = require('../../dist/models/unet/config');
const { AutoencoderKL } = require('../../dist/models/vae/autoencoder_kl');
const { AutoencoderTiny } = require('../../dist/models/vae/autoencoder_tiny');
const { readAutoencoderKLConfig, readAutoencoderTinyConfig } = require('../../dist/models/vae/config');
const { fixture } = require('../helpers/fixtures');

const params = (w) => [...w.recordedShapes().values()].reduce((s, shape) => s + shape.reduce((a, b) => a * b, 1), 0);

const CASES = {
  text_clip_l: ['sd15/text_encoder', (w, dir) => new CLIPTextModel(readCLIPTextConfig(dir), w).graph(1, 77, ['last_hidden_state'])],
  text_openclip_h_23l: ['sd21_base/text_encoder', (w, dir) => new CLIPTextModel(readCLIPTextConfig(dir), w).graph(1, 77, ['last_hidden_state'])],
  text_openclip_bigg_proj: ['sdxl_base/text_encoder_2', (w, dir) => new CLIPTextModel(readCLIPTextConfig(dir), w).graph(1, 77, ['last_hidden_state', 'text_embeds'])],
  unet_sd15_512: ['sd15/unet', (w, dir) => new UNet2DConditionModel(readUNetConfig(dir), w).graph(1, 64, 64, 77)],
  unet_lcm_dreamshaper_v7_512: ['lcm_dreamshaper_v7/unet', (w, dir) => new UNet2DConditionModel(readUNetConfig(dir), w).graph(1, 64, 64, 77)],
  unet_sd21_sdturbo_512: ['sd21_base/unet', (w, dir) => new UNet2DConditionModel(readUNetConfig(dir), w).graph(1, 64, 64, 77)],
  unet_sdxl_512: ['sdxl_base/unet', (w, dir) => new UNet2DConditionModel(readUNetConfig(dir), w).graph(1, 64, 64, 77)],
  unet_sdxl_1024: ['sdxl_base/unet', (w, dir) => new UNet2DConditionModel(readUNetConfig(dir), w).graph(1, 128, 128, 77)],
  vae_decoder_512: ['sd15/vae', (w, dir) => new AutoencoderKL(readAutoencoderKLConfig(dir), w).decoderGraphFor(1, 64, 64)],
  vae_decoder_1024: ['sd15/vae', (w, dir) => new AutoencoderKL(readAutoencoderKLConfig(dir), w).decoderGraphFor(1, 128, 128)],
  vae_encoder_512: ['sd15/vae', (w, dir) => new AutoencoderKL(readAutoencoderKLConfig(dir), w).encoderGraphFor(1, 512, 512)],
  vae_encoder_1024: ['sd15/vae', (w, dir) => new AutoencoderKL(readAutoencoderKLConfig(dir), w).encoderGraphFor(1, 1024, 1024)],
  taesd_decoder_512: ['taesd/vae', (w, dir) => new AutoencoderTiny(readAutoencoderTinyConfig(dir), w).decoderGraphFor(1, 64, 64)],
  taesd_decoder_1024: ['taesd/vae', (w, dir) => new AutoencoderTiny(readAutoencoderTinyConfig(dir), w).decoderGraphFor(1, 128, 128)],
  taesd_encoder_512: ['taesd/vae', (w, dir) => new AutoencoderTiny(readAutoencoderTinyConfig(dir), w).encoderGraphFor(1, 512, 512)],
};

describe('real architectures match the reference cost table', () => {
  const cost = JSON.parse(fs.readFileSync(fixture('configs', 'cost.json'), 'utf8'));
  const rows = new Map(cost.components.map((c) => [c.component, c]));

  it('covers every component of the table', () => {
    for (const name of rows.keys()) assert.ok(CASES[name], `no case for ${name}`);
  });

  for (const [name, [configDir, build]] of Object.entries(CASES)) {
    it(`${name}: parameters and MACs`, () => {
      const row = rows.get(name);
      assert.ok(row, `${name} is not in cost.json`);
      const w = Weights.recording(name);
      const graph = build(w, path.dirname(fixture('configs', configDir, 'config.json')));
      assert.strictEqual(params(w), row.params, 'parameters');
      const m = graph.macs;
      assert.deepStrictEqual(
        { conv: m.conv, linear: m.linear, qk: m.attentionQK, pv: m.attentionPV, total: m.total },
        { conv: row.macs.conv, linear: row.macs.linear, qk: row.macs.attention_qk, pv: row.macs.attention_pv, total: row.macs.total },
      );
    });
  }
});
