// SD 1.x (CompVis ldm layout): CLIP-L text encoder under cond_stage_model.transformer., no label_emb.
import { planCLIP } from '../clip';
import type { SingleFileFamily } from '../types';
import { planUNet } from '../unet';
import { planVAE } from '../vae';
import { CLIP_L, SD_UNET, SD_VAE, assemble, eulerConfig, hasKeyWithPrefix } from './common';

export const sd1: SingleFileFamily = {
  name: 'sd1',
  description: 'Stable Diffusion 1.x (CompVis layout, CLIP-L text encoder)',
  detect: (h) => hasKeyWithPrefix(h, 'cond_stage_model.transformer.') && !h.has('model.diffusion_model.label_emb.0.0.weight'),
  plan: (h) =>
    assemble(h, {
      unet: planUNet(h, 'model.diffusion_model.'),
      vae: planVAE(h, 'first_stage_model.'),
      text_encoder: planCLIP(h, 'cond_stage_model.transformer.'),
    }),
  defaults: {
    pipelineClass: 'StableDiffusionPipeline',
    configRepo: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
    configs: { unet: { ...SD_UNET, sample_size: 64 }, vae: SD_VAE, text_encoder: CLIP_L },
    unetHeads: 8,
    headDim: { text_encoder: 64 },
    schedulerConfig: eulerConfig({}),
  },
};
