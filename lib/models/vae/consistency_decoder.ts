// ConsistencyDecoderVAE (OpenAI's consistency decoder for SD latents, diffusers layout): the KL
// encoder, and a UNet2DModel decoder sampled in two consistency steps [1008, 512]. The whole
// two-step decode is one graph.
import * as path from 'path';
import { ArgumentError } from '../../errors';
import type { CompiledGraph } from '../../graph';
import { type Description, GraphCache } from '../../graph/describe';
import { type NativeTensor, addon, callNative } from '../../native';
import { Checkpoint } from '../../safetensors';
import { consistencyDecoderSchedule } from '../../schedulers/consistency_decoder';
import { ConfigReader, readJsonFile } from '../config';
import { type UNet2DSpec, unet2d } from '../unet/unet2d';
import { type ModelLoadOptions, Weights } from '../weights';
import { type KLEncoderSpec, klEncodeParts } from './kl_encoder';

/** Latent normalisation constants of diffusers' ConsistencyDecoderVAE (in its code, not the checkpoint). */
export const CONSISTENCY_DECODER_MEANS = [0.38862467, 0.02253063, 0.07381133, -0.0171294];
export const CONSISTENCY_DECODER_STDS = [0.9654121, 1.0440036, 0.76147926, 0.77022034];

interface CDConfig {
  encoder: KLEncoderSpec;
  decoder: UNet2DSpec;
  scalingFactor: number;
  downscale: number;
}

function readConfig(dir: string): CDConfig {
  const file = path.join(dir, 'config.json');
  const c = new ConfigReader(readJsonFile(file), file);
  c.require('_class_name', c.str('_class_name', 'ConsistencyDecoderVAE') === 'ConsistencyDecoderVAE', 'expected ConsistencyDecoderVAE');
  const encCh = c.intList('encoder_block_out_channels', (c.cfg.encoder_block_out_channels as unknown[] | undefined)?.length ?? 4);
  const decCh = c.intList('decoder_block_out_channels', (c.cfg.decoder_block_out_channels as unknown[] | undefined)?.length ?? 4);
  const n = decCh.length;
  c.require('encoder_down_block_types', c.strList('encoder_down_block_types').every((t) => t === 'DownEncoderBlock2D'), 'only DownEncoderBlock2D');
  c.require('decoder_down_block_types', c.strList('decoder_down_block_types').length === n && c.strList('decoder_down_block_types').every((t) => t === 'ResnetDownsampleBlock2D'), 'only ResnetDownsampleBlock2D');
  c.require('decoder_up_block_types', c.strList('decoder_up_block_types').length === n && c.strList('decoder_up_block_types').every((t) => t === 'ResnetUpsampleBlock2D'), 'only ResnetUpsampleBlock2D');
  c.require('decoder_time_embedding_type', c.str('decoder_time_embedding_type', 'learned') === 'learned', 'only learned');
  c.require('decoder_resnet_time_scale_shift', c.str('decoder_resnet_time_scale_shift', 'scale_shift') === 'scale_shift', 'only scale_shift');
  c.require('decoder_add_attention', !c.bool('decoder_add_attention', false), 'not implemented');
  c.require('encoder_act_fn', c.str('encoder_act_fn', 'silu') === 'silu', 'only silu');
  c.require('encoder_double_z', c.bool('encoder_double_z', true), 'only true');
  const latent = c.int('latent_channels', 4);
  return {
    encoder: {
      inChannels: c.int('encoder_in_channels', 3),
      blockOutChannels: encCh,
      layersPerBlock: c.int('encoder_layers_per_block', 2),
      groups: c.int('encoder_norm_num_groups', 32),
      latentChannels: latent,
      midBlockAttention: true,
      useQuantConv: true,
    },
    decoder: {
      inChannels: c.int('decoder_in_channels', 7),
      outChannels: c.int('decoder_out_channels', 6),
      blockOutChannels: decCh,
      layersPerBlock: c.int('decoder_layers_per_block', 3),
      groups: c.int('decoder_norm_num_groups', 32),
      eps: c.num('decoder_norm_eps', 1e-5),
      numTrainTimesteps: c.int('decoder_num_train_timesteps', 1024),
    },
    scalingFactor: c.num('scaling_factor', 0.18215),
    downscale: 2 ** (c.intList('block_out_channels', (c.cfg.block_out_channels as unknown[] | undefined)?.length ?? 4).length - 1),
  };
}

export class ConsistencyDecoderVAE {
  private readonly graphs = new GraphCache<CompiledGraph>('consistency decoder');

  constructor(
    readonly config: CDConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): ConsistencyDecoderVAE {
    const config = readConfig(dir);
    const checkpoint = Checkpoint.open(dir, { variant: options.variant });
    return new ConsistencyDecoderVAE(config, Weights.of(checkpoint, `consistency decoder ${dir}`, options));
  }

  async encode(image: Float32Array | NativeTensor, shape: { batch: number; height: number; width: number }): Promise<{ mean: NativeTensor; logvar: NativeTensor; std: NativeTensor }> {
    const { batch: B, height: H, width: W } = shape;
    const graph = await this.graphs.getYielding(`enc${B}x${H}x${W}`, () => this.encoderGraph(B, H, W));
    const out = await graph.run({ image });
    return { mean: out.mean, logvar: out.logvar, std: out.std };
  }

  /**
   * z [B, 4, h, w] = latents / scaling_factor (what pipelines pass to decode); noiseInit and
   * noiseStep [B, 3, h*f, w*f] are the sampler's two normal draws. Returns the image, ~[-1, 1].
   */
  async decode(
    z: Float32Array | NativeTensor,
    shape: { batch: number; height: number; width: number },
    noiseInit: Float32Array | NativeTensor,
    noiseStep: Float32Array | NativeTensor,
  ): Promise<NativeTensor> {
    const { batch: B, height: h, width: w0 } = shape;
    const f = this.config.downscale;
    if (f > 16) throw new ArgumentError(`downscale ${f} too large`);
    const graph = await this.graphs.getYielding(`dec${B}x${h}x${w0}`, () => this.decoderGraph(B, h, w0));
    return (await graph.run({ z, noise_init: noiseInit, noise_step: noiseStep })).image;
  }

  private *encoderGraph(B: number, H: number, W: number): Description<CompiledGraph> {
    const e = this.config.encoder;
    const g = this.w.builder();
    const d = yield* klEncodeParts(g, this.w, g.toNHWC(g.input('image', [B, e.inChannels, H, W])), e);
    g.output('mean', g.toNCHW(d.mean));
    g.output('logvar', g.toNCHW(d.logvar));
    g.output('std', g.toNCHW(d.std));
    return g.build();
  }

  private *decoderGraph(B: number, h: number, w0: number): Description<CompiledGraph> {
    const cfg = this.config;
    const d = cfg.decoder;
    const f = cfg.downscale;
    const zc = cfg.encoder.latentChannels;
    const s = consistencyDecoderSchedule(d.numTrainTimesteps);
    const g = this.w.builder();
    const a = addon();
    const vec = (v: number[]) => callNative(() => a.tensorFromFloat32('F32', [v.length], Float32Array.from(v)));
    // z' = (z * sf - means) / stds, nearest-upsampled by f
    const z = g.toNHWC(g.input('z', [B, zc, h, w0]));
    const inv = CONSISTENCY_DECODER_STDS.map((x) => 1 / x);
    const zn = g.upsample(g.add(g.mul(g.affine(z, cfg.scalingFactor), vec(inv)), vec(CONSISTENCY_DECODER_MEANS.map((m, i) => -m * inv[i]))), f);
    const H = h * f, W = w0 * f;
    let x = g.affine(g.toNHWC(g.input('noise_init', [B, 3, H, W])), s.initNoiseSigma);
    const noiseStep = g.toNHWC(g.input('noise_step', [B, 3, H, W]));
    for (const [i, t] of s.timesteps.entries()) {
      yield;
      const tIds = callNative(() => a.tensorFromBytes('I64', [B], BigInt64Array.from({ length: B }, () => BigInt(t))));
      const inp = g.concat(g.affine(x, s.cIn[i]), zn);
      const out = g.slice(unet2d(g, this.w.scope('decoder_unet'), inp, g.constant(tIds, `t${t}`), d), 3, 0, 3);
      const x0 = g.add(g.affine(out, s.cOut[i]), g.affine(x, s.cSkip[i]));
      x = i === s.timesteps.length - 1 ? x0 : g.add(g.affine(x0, s.sqrtAlphaNext[i]), g.affine(noiseStep, s.sqrtOneMinusAlphaNext[i]));
    }
    g.output('image', g.toNCHW(x));
    return g.build();
  }

  unusedWeights(): string[] {
    return this.w.unused();
  }

  /** Drops the compiled graphs, their working memory and the weight forms only they held; rebuilt on next use. */
  resetGraphs(): void {
    this.graphs.clear();
  }

  dispose(): void {
    this.graphs.close();
    this.w.close();
  }
}
