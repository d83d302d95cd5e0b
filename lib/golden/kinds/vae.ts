// vae_encode / vae_decode (AutoencoderKL), taesd_encode / taesd_decode (AutoencoderTiny) and
// consistency_decoder_encode / _decode (ConsistencyDecoderVAE) goldens.
import { AutoencoderTiny } from '../../models/vae/autoencoder_tiny';
import { CONSISTENCY_DECODER_MEANS, CONSISTENCY_DECODER_STDS, ConsistencyDecoderVAE } from '../../models/vae/consistency_decoder';
import { loadVae } from '../models';
import type { CaseRunner } from './network';

const nchw = (shape: number[]) => ({ batch: shape[0], height: shape[2], width: shape[3] });

function checkUnused(unused: string[]): void {
  if (unused.length) throw new Error(`unused weights: ${unused.slice(0, 5).join(', ')}`);
}

export const vaeDecodeCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const vae = loadVae(modelDir, fixtures, meta.component);
  try {
    const latents = golden.float32('latents');
    const sf = vae.config.scalingFactor;
    if (golden.has('latents_div_scaling')) cmp.add('latents_div_scaling', latents.map((v) => Math.fround(v / sf)), golden.float32('latents_div_scaling'));
    const input = golden.has('latents_div_scaling') ? golden.float32('latents_div_scaling') : latents.map((v) => v / sf);
    const image = await vae.decode(input, nchw(golden.info('latents').shape));
    cmp.add('image', image.toFloat32(), golden.float32('image'));
    image.dispose();
  } finally {
    vae.dispose();
  }
};

export const vaeEncodeCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const vae = loadVae(modelDir, fixtures, meta.component);
  try {
    const dist = await vae.encode(golden.float32('image'), nchw(golden.info('image').shape), golden.float32('eps'));
    const sf = vae.config.scalingFactor;
    const mean = dist.mean.toFloat32();
    cmp.add('mean', mean, golden.float32('mean'));
    cmp.add('logvar', dist.logvar.toFloat32(), golden.float32('logvar'));
    cmp.add('std', dist.std.toFloat32(), golden.float32('std'));
    cmp.add('mean_scaled', mean.map((v) => v * sf), golden.float32('mean_scaled'));
    cmp.add('sample_scaled', (dist.sample?.toFloat32() ?? new Float32Array()).map((v) => v * sf), golden.float32('sample_scaled'));
    checkUnused(vae.unusedWeights().filter((k) => !k.startsWith('decoder.') && !k.startsWith('post_quant_conv.')));
  } finally {
    vae.dispose();
  }
};

export const taesdDecodeCase: CaseRunner = async (golden, _meta, modelDir, cmp, ctx) => {
  const taesd = AutoencoderTiny.fromPretrained(modelDir, { device: ctx.device });
  try {
    const image = await taesd.decode(golden.float32('latents'), nchw(golden.info('latents').shape));
    cmp.add('image', image.toFloat32(), golden.float32('image'));
    checkUnused(taesd.unusedWeights().filter((k) => !k.startsWith('encoder.')));
  } finally {
    taesd.dispose();
  }
};

export const taesdEncodeCase: CaseRunner = async (golden, _meta, modelDir, cmp, ctx) => {
  const taesd = AutoencoderTiny.fromPretrained(modelDir, { device: ctx.device });
  try {
    const latents = await taesd.encode(golden.float32('image'), nchw(golden.info('image').shape));
    cmp.add('latents', latents.toFloat32(), golden.float32('latents'));
    checkUnused(taesd.unusedWeights().filter((k) => !k.startsWith('decoder.')));
  } finally {
    taesd.dispose();
  }
};

export const cdDecodeCase: CaseRunner = async (golden, _meta, modelDir, cmp, ctx) => {
  const cd = ConsistencyDecoderVAE.fromPretrained(modelDir, { device: ctx.device });
  try {
    cmp.add('means', CONSISTENCY_DECODER_MEANS, golden.float32('means'));
    cmp.add('stds', CONSISTENCY_DECODER_STDS, golden.float32('stds'));
    const image = await cd.decode(golden.float32('z'), nchw(golden.info('z').shape), golden.float32('noise_init'), golden.float32('noise_step'));
    cmp.add('image', image.toFloat32(), golden.float32('image'));
  } finally {
    cd.dispose();
  }
};

export const cdEncodeCase: CaseRunner = async (golden, _meta, modelDir, cmp, ctx) => {
  const cd = ConsistencyDecoderVAE.fromPretrained(modelDir, { device: ctx.device });
  try {
    const dist = await cd.encode(golden.float32('image'), nchw(golden.info('image').shape));
    cmp.add('mean', dist.mean.toFloat32(), golden.float32('mean'));
    cmp.add('logvar', dist.logvar.toFloat32(), golden.float32('logvar'));
  } finally {
    cd.dispose();
  }
};
