// AutoencoderKL (diffusers module tree and key names): Encoder + quant_conv -> (mean, logvar),
// post_quant_conv + Decoder. Images are NCHW in [-1, 1]; latents NCHW, unscaled (the caller
// divides by scaling_factor before decoding, as the pipelines do).
import { ArgumentError } from '../../errors';
import { Act, type CompiledGraph, type GemmOperand } from '../../graph';
import { type Description, GraphCache } from '../../graph/describe';
import type { NativeTensor } from '../../native';
import { Checkpoint, type TensorSource } from '../../safetensors';
import type { Json } from '../config';
import { resnet, upsample } from '../blocks';
import { type ModelLoadOptions, type ModelTarget, Weights } from '../weights';
import { type AutoencoderKLConfig, parseAutoencoderKLConfig, readAutoencoderKLConfig } from './config';
import { klEncodeParts, klMidBlock } from './kl_encoder';

export interface LatentDistribution {
  mean: NativeTensor;
  /** clamped to [-30, 20] as diffusers does */
  logvar: NativeTensor;
  std: NativeTensor;
  /** mean + std * noise, when noise was given */
  sample?: NativeTensor;
}

export class AutoencoderKL {
  private readonly graphs = new GraphCache<CompiledGraph>('vae');

  constructor(
    readonly config: AutoencoderKLConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): AutoencoderKL {
    const config = readAutoencoderKLConfig(dir);
    const checkpoint = Checkpoint.open(dir, { variant: options.variant });
    return new AutoencoderKL(config, Weights.of(checkpoint, `vae ${dir}`, options));
  }

  /** From a config object and any tensor source under diffusers names (a single-file checkpoint). */
  static fromSource(config: Json, source: TensorSource, label: string, target: ModelTarget = {}): AutoencoderKL {
    return new AutoencoderKL(parseAutoencoderKLConfig(config, label), Weights.of(source, `vae ${label}`, target));
  }

  get downscale(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** force_upcast VAEs (SDXL's) overflow fp16: their CUDA GEMMs take bf16 operands (docs/CUDA.md). */
  get gemmOperand(): GemmOperand {
    return this.config.forceUpcast ? 'BF16' : 'F16';
  }

  private builder() {
    return this.w.builder({ gemmOperand: this.gemmOperand });
  }

  private *encoderGraph(B: number, H: number, W: number, withNoise: boolean): Description<CompiledGraph> {
    const c = this.config;
    const g = this.builder();
    const x = g.toNHWC(g.input('image', [B, c.inChannels, H, W]));
    const { mean, logvar, std } = yield* klEncodeParts(g, this.w, x, c);
    g.output('mean', g.toNCHW(mean));
    g.output('logvar', g.toNCHW(logvar));
    g.output('std', g.toNCHW(std));
    if (withNoise) {
      const noise = g.toNHWC(g.input('noise', [B, c.latentChannels, H / this.downscale, W / this.downscale]));
      g.output('sample', g.toNCHW(g.add(g.mul(std, noise), mean)));
    }
    return g.build();
  }

  private *decoderGraph(B: number, h: number, w0: number): Description<CompiledGraph> {
    const c = this.config;
    const g = this.builder();
    const w = this.w.scope('decoder');
    const ch = c.blockOutChannels;
    const z = c.latentChannels;
    let x = g.toNHWC(g.input('latents', [B, z, h, w0]));
    if (c.usePostQuantConv) x = g.conv2d(x, this.w.conv('post_quant_conv.weight', [z, z, 1, 1]), this.w.f32('post_quant_conv.bias', [z]));
    const top = ch[ch.length - 1];
    x = g.conv2d(x, w.conv('conv_in.weight', [top, z, 3, 3]), w.f32('conv_in.bias', [top]), { padding: 1 });
    x = klMidBlock(g, w.scope('mid_block'), x, top, c.groups, c.midBlockAttention);
    const rev = [...ch].reverse();
    let out = rev[0];
    for (const [i, outCh] of rev.entries()) {
      yield;
      const prev = out;
      out = outCh;
      const blk = w.scope(`up_blocks.${i}`);
      for (let j = 0; j < c.layersPerBlock + 1; j++) {
        x = resnet(g, blk.scope(`resnets.${j}`), x, { inChannels: j === 0 ? prev : out, outChannels: out, groups: c.groups, eps: 1e-6 });
      }
      if (i < rev.length - 1) x = upsample(g, blk.scope('upsamplers.0'), x, out);
    }
    yield;
    x = g.groupNorm(x, w.f32('conv_norm_out.weight', [ch[0]]), w.f32('conv_norm_out.bias', [ch[0]]), c.groups, 1e-6, Act.Silu);
    x = g.conv2d(x, w.conv('conv_out.weight', [c.outChannels, ch[0], 3, 3]), w.f32('conv_out.bias', [c.outChannels]), { padding: 1 });
    g.output('image', g.toNCHW(x));
    return g.build();
  }

  /** The decoder graph's cache key and description for latents of [batch, z, height, width]. */
  private decoderSpec(batch: number, height: number, width: number): [string, () => Description<CompiledGraph>] {
    return [`dec${batch}x${height}x${width}`, () => this.decoderGraph(batch, height, width)];
  }

  /** The encoder graph's cache key and description for images of [batch, C, height, width]. */
  private encoderSpec(batch: number, height: number, width: number, withNoise: boolean): [string, () => Description<CompiledGraph>] {
    return [`enc${batch}x${height}x${width}${withNoise ? 'n' : ''}`, () => this.encoderGraph(batch, height, width, withNoise)];
  }

  /** The cached decoder graph for latents of [batch, z, height, width]. */
  decoderGraphFor(batch: number, height: number, width: number): CompiledGraph {
    return this.graphs.get(...this.decoderSpec(batch, height, width));
  }

  /** The cached encoder graph for images of [batch, C, height, width]. */
  encoderGraphFor(batch: number, height: number, width: number, withNoise = false): CompiledGraph {
    return this.graphs.get(...this.encoderSpec(batch, height, width, withNoise));
  }

  /** Builds every graph once at the smallest size (with recording weights: lists the weights). */
  buildGraphs(): void {
    this.encoderGraphFor(1, this.downscale, this.downscale);
    this.decoderGraphFor(1, 1, 1);
  }

  /** image [B, C, H, W] in [-1, 1] -> the latent distribution (unscaled); with noise, also a sample. */
  async encode(image: Float32Array | NativeTensor, shape: { batch: number; height: number; width: number }, noise?: Float32Array | NativeTensor): Promise<LatentDistribution> {
    const { batch, height, width } = shape;
    const f = this.downscale;
    if (height % f || width % f) throw new ArgumentError(`image size ${height}x${width} must be divisible by ${f}`);
    const graph = await this.graphs.getYielding(...this.encoderSpec(batch, height, width, !!noise));
    const out = await graph.run(noise ? { image, noise } : { image });
    return { mean: out.mean, logvar: out.logvar, std: out.std, sample: out.sample };
  }

  /** latents [B, z, h, w] (already divided by scaling_factor) -> image [B, C, h*f, w*f], roughly [-1, 1]. */
  async decode(latents: Float32Array | NativeTensor, shape: { batch: number; height: number; width: number }): Promise<NativeTensor> {
    const graph = await this.graphs.getYielding(...this.decoderSpec(shape.batch, shape.height, shape.width));
    return (await graph.run({ latents })).image;
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
