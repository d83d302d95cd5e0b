// SDXL (Stability sgm layout): CLIP-L under conditioner.embedders.0.transformer., OpenCLIP-bigG
// with its projection under conditioner.embedders.1.model., label_emb (added conditioning).
import { planCLIP, planOpenCLIP } from '../clip';
import type { SingleFileFamily } from '../types';
import { planUNet } from '../unet';
import { planVAE } from '../vae';
import { CLIP_L, OPEN_CLIP, SD_UNET, SD_VAE, assemble, eulerConfig, hasKeyWithPrefix } from './common';

export const sdxl: SingleFileFamily = {
  name: 'sdxl',
  description: 'Stable Diffusion XL (sgm layout, CLIP-L + OpenCLIP-bigG text encoders)',
  detect: (h) =>
    hasKeyWithPrefix(h, 'conditioner.embedders.0.transformer.') && hasKeyWithPrefix(h, 'conditioner.embedders.1.model.') && h.has('model.diffusion_model.label_emb.0.0.weight'),
  plan: (h) => {
    const te2 = planOpenCLIP(h, 'conditioner.embedders.1.model.', { projection: true });
    return assemble(
      h,
      {
        unet: planUNet(h, 'model.diffusion_model.', { pooledWidth: te2.derived.projection_dim as number }),
        vae: planVAE(h, 'first_stage_model.'),
        text_encoder: planCLIP(h, 'conditioner.embedders.0.transformer.'),
        text_encoder_2: te2,
      },
      te2.ignored,
    );
  },
  defaults: {
    pipelineClass: 'StableDiffusionXLPipeline',
    configRepo: 'stabilityai/stable-diffusion-xl-base-1.0',
    configs: {
      unet: { ...SD_UNET, sample_size: 128 },
      vae: { ...SD_VAE, scaling_factor: 0.13025, force_upcast: true },
      text_encoder: CLIP_L,
      text_encoder_2: OPEN_CLIP,
    },
    headDim: { unet: 64, text_encoder: 64, text_encoder_2: 64 },
    schedulerConfig: eulerConfig({}),
    forceZerosForEmptyPrompt: true,
  },
};
