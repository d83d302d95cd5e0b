// vae_encode / vae_decode (AutoencoderKL), taesd_encode / taesd_decode (AutoencoderTiny) and
// consistency_decoder_encode / _decode (ConsistencyDecoderVAE) goldens.
import { AutoencoderTiny } from '../../models/vae/autoencoder_tiny';
import { CONSISTENCY_DECODER_MEANS, CONSISTENCY_DECODER_STDS, ConsistencyDecoderVAE } from '../../models/vae/consistency_decoder';
import { consistencyDecoderSchedule } from '../../schedulers/consistency_decoder';
import { CaseFieldError, fieldNumber, fieldNumbers } from '../fields';
import { loadVae } from '../models';
import type { CaseRunner, GoldenCase } from './network';

export const VAE_FIELDS = ['component', 'scaling_factor'];
export const CD_DECODE_FIELDS = [...VAE_FIELDS, 'num_inference_steps', 'timesteps'];

/** The case's scaling_factor is the model config's (which is what the engine uses). */
function checkScaling(meta: GoldenCase, configured: number): void {
  if (meta.scaling_factor === undefined) return;
  const sf = fieldNumber(meta, 'scaling_factor', 'case field');
  if (sf !== configured) throw new CaseFieldError(`scaling_factor ${sf} differs from the model config's ${configured}`);
}

const nchw = (shape: number[]) => ({ batch: shape[0], height: shape[2], width: shape[3] });

function checkUnused(unused: string[]): void {
  if (unused.length) throw new Error(`unused weights: ${unused.slice(0, 5).join(', ')}`);
}

export const vaeDecodeCase: CaseRunner = async (golden, meta, modelDir, cmp, fixtures) => {
  const vae = loadVae(modelDir, fixtures, meta.component);
  cmp.bf16Operands = fixtures.device === 'cuda' && vae.gemmOperand === 'BF16';
  try {
    checkScaling(meta, vae.config.scalingFactor);
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
  cmp.bf16Operands = fixtures.device === 'cuda' && vae.gemmOperand === 'BF16';
  try {
    checkScaling(meta, vae.config.scalingFactor);
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

export const taesdDecodeCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  const taesd = AutoencoderTiny.fromPretrained(modelDir, ctx);
  try {
    checkScaling(meta, taesd.config.scalingFactor);
    const image = await taesd.decode(golden.float32('latents'), nchw(golden.info('latents').shape));
    cmp.add('image', image.toFloat32(), golden.float32('image'));
    checkUnused(taesd.unusedWeights().filter((k) => !k.startsWith('encoder.')));
  } finally {
    taesd.dispose();
  }
};

export const taesdEncodeCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  const taesd = AutoencoderTiny.fromPretrained(modelDir, ctx);
  try {
    checkScaling(meta, taesd.config.scalingFactor);
    const latents = await taesd.encode(golden.float32('image'), nchw(golden.info('image').shape));
    cmp.add('latents', latents.toFloat32(), golden.float32('latents'));
    checkUnused(taesd.unusedWeights().filter((k) => !k.startsWith('decoder.')));
  } finally {
    taesd.dispose();
  }
};

export const cdDecodeCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  const cd = ConsistencyDecoderVAE.fromPretrained(modelDir, ctx);
  try {
    checkScaling(meta, cd.config.scalingFactor);
    // the decoder's sampling is fixed: the case must describe that one
    const own = consistencyDecoderSchedule(cd.config.decoder.numTrainTimesteps).timesteps;
    if (meta.timesteps !== undefined) {
      const ts = fieldNumbers(meta, 'timesteps', 'case field');
      if (ts.join() !== own.join()) throw new CaseFieldError(`timesteps [${ts}] differ from the consistency decoder's [${own}]`);
    }
    if (meta.num_inference_steps !== undefined && fieldNumber(meta, 'num_inference_steps', 'case field') !== own.length) {
      throw new CaseFieldError(`num_inference_steps ${meta.num_inference_steps}: the consistency decoder samples ${own.length} steps`);
    }
    cmp.add('means', CONSISTENCY_DECODER_MEANS, golden.float32('means'));
    cmp.add('stds', CONSISTENCY_DECODER_STDS, golden.float32('stds'));
    const image = await cd.decode(golden.float32('z'), nchw(golden.info('z').shape), golden.float32('noise_init'), golden.float32('noise_step'));
    cmp.add('image', image.toFloat32(), golden.float32('image'));
  } finally {
    cd.dispose();
  }
};

export const cdEncodeCase: CaseRunner = async (golden, meta, modelDir, cmp, ctx) => {
  const cd = ConsistencyDecoderVAE.fromPretrained(modelDir, ctx);
  try {
    checkScaling(meta, cd.config.scalingFactor);
    const dist = await cd.encode(golden.float32('image'), nchw(golden.info('image').shape));
    cmp.add('mean', dist.mean.toFloat32(), golden.float32('mean'));
    cmp.add('logvar', dist.logvar.toFloat32(), golden.float32('logvar'));
  } finally {
    cd.dispose();
  }
};
