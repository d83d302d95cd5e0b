// SD 2.x: the OpenCLIP-H text encoder, in the CompVis layout (cond_stage_model.model.) or in
// Stability's sgm layout as the SD-Turbo release ships it (conditioner.embedders.0.model., no
// second embedder, no label_emb). diffusers' SD2 text encoder stops before OpenCLIP's last
// resblock: resblock 23 is dropped by name, as diffusers does.
import { planOpenCLIP } from '../clip';
import type { FamilyDefaults, HeaderIndex, SingleFileFamily } from '../types';
import { planUNet } from '../unet';
import { planVAE } from '../vae';
import { OPEN_CLIP, SD_UNET, SD_VAE, assemble, eulerConfig, hasKeyWithPrefix } from './common';

function planSD2(h: HeaderIndex, textPrefix: string) {
  const te = planOpenCLIP(h, textPrefix, { projection: false, skipLayers: [23] });
  return assemble(
    h,
    { unet: planUNet(h, 'model.diffusion_model.'), vae: planVAE(h, 'first_stage_model.'), text_encoder: te },
    [...te.ignored, `${textPrefix}text_projection`],
  );
}

const common: Omit<FamilyDefaults, 'configRepo' | 'schedulerConfig'> = {
  pipelineClass: 'StableDiffusionPipeline',
  configs: { unet: { ...SD_UNET, sample_size: 96 }, vae: SD_VAE, text_encoder: OPEN_CLIP },
  headDim: { unet: 64, text_encoder: 64 },
};

export const sd2: SingleFileFamily = {
  name: 'sd2',
  description: 'Stable Diffusion 2.x (CompVis layout, OpenCLIP-H text encoder)',
  detect: (h) => hasKeyWithPrefix(h, 'cond_stage_model.model.') && !h.has('model.diffusion_model.label_emb.0.0.weight'),
  plan: (h) => planSD2(h, 'cond_stage_model.model.'),
  // SD 2.1 (768) predicts v, and so does diffusers' guess for SD2 files; SD 2.x-base files need prediction: 'epsilon'
  defaults: { ...common, configRepo: 'stabilityai/stable-diffusion-2-1', schedulerConfig: eulerConfig({ prediction_type: 'v_prediction' }) },
};

export const sd2Sgm: SingleFileFamily = {
  name: 'sd2-sgm',
  description: 'Stable Diffusion 2.x in the sgm layout (the SD-Turbo release)',
  detect: (h) =>
    hasKeyWithPrefix(h, 'conditioner.embedders.0.model.') && !hasKeyWithPrefix(h, 'conditioner.embedders.1.') && !h.has('model.diffusion_model.label_emb.0.0.weight'),
  plan: (h) => planSD2(h, 'conditioner.embedders.0.model.'),
  defaults: {
    ...common,
    configs: { ...common.configs, unet: { ...SD_UNET, sample_size: 64 } },
    configRepo: 'stabilityai/sd-turbo',
    schedulerConfig: eulerConfig({ timestep_spacing: 'trailing', steps_offset: 1 }),
  },
};
