// UNet2DConditionModel (diffusers module tree and key names) for SD1.x, SD2.x, SDXL and LCM:
// time embedding (+ LCM guidance cond_proj, + SDXL text_time), conv_in, down blocks, mid block,
// up blocks with skip connections, GroupNorm + SiLU, conv_out. Inputs and outputs are NCHW.
import { ArgumentError } from '../../errors';
import { Act, type CompiledGraph, type GraphBuilder, type Value } from '../../graph';
import type { NativeTensor } from '../../native';
import { Checkpoint, type TensorSource } from '../../safetensors';
import type { Json } from '../config';
import { type Description, GraphCache, describeNow } from '../../graph/describe';
import { resnet, transformer2d, upsample } from '../blocks';
import { type UNetExtras, encoderParts, textEmbedsDim } from './encoder';
import { type ModelLoadOptions, type ModelTarget, Weights } from '../weights';
import { type UNetConfig, parseUNetConfig, readUNetConfig } from './config';

export interface UNetInputs {
  /** [B, C, H, W] latents (NCHW) */
  sample: Float32Array | NativeTensor;
  /** [B] timesteps (float32, fractional allowed) */
  timestep: Float32Array | NativeTensor;
  /** [B, L, crossAttentionDim] */
  encoderHiddenStates: Float32Array | NativeTensor;
  /** LCM: [B, time_cond_proj_dim] guidance embedding */
  timestepCond?: Float32Array | NativeTensor;
  /** SDXL: [B, pooled width] */
  textEmbeds?: Float32Array | NativeTensor;
  /** SDXL: [B, 6] */
  timeIds?: Float32Array | NativeTensor;
}

export type { UNetExtras } from './encoder';

/** A ControlNet's residuals (NHWC): one per skip connection, and one for the mid block. */
export interface UNetResiduals {
  down: Value[];
  mid: Value;
}

export class UNet2DConditionModel {
  private readonly graphs = new GraphCache<CompiledGraph>('unet');

  constructor(
    readonly config: UNetConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): UNet2DConditionModel {
    const config = readUNetConfig(dir);
    const checkpoint = Checkpoint.open(dir, { variant: options.variant });
    return new UNet2DConditionModel(config, Weights.of(checkpoint, `unet ${dir}`, options));
  }

  /** From a config object and any tensor source under diffusers names (a single-file checkpoint). */
  static fromSource(config: Json, source: TensorSource, label: string, target: ModelTarget = {}): UNet2DConditionModel {
    return new UNet2DConditionModel(parseUNetConfig(config, label), Weights.of(source, `unet ${label}`, target));
  }

  /**
   * How many times the latents are halved. Any latent size works: where it is not divisible by
   * 2^this, the down path rounds up and each upsampler resizes to its skip's size (diffusers'
   * upsample_size).
   */
  get downsamplings(): number {
    return this.config.blockOutChannels.length - 1;
  }

  graph(batch: number, height: number, width: number, contextLength: number): CompiledGraph {
    return this.graphs.get(...this.standaloneSpec(batch, height, width, contextLength));
  }

  private standaloneSpec(batch: number, height: number, width: number, contextLength: number): [string, () => Description<CompiledGraph>] {
    for (const [k, v] of [['height', height], ['width', width]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new ArgumentError(`latent ${k} must be a positive integer, got ${v}`);
    }
    return [`${batch}x${height}x${width}x${contextLength}`, () => this.build(batch, height, width, contextLength)];
  }

  /** Builds the graph once at the smallest size (with recording weights: lists the weights). */
  buildGraphs(): void {
    const f = 2 ** this.downsamplings;
    this.graph(1, f, f, 77);
  }

  private *build(B: number, H: number, W: number, L: number): Description<CompiledGraph> {
    const c = this.config;
    const g = this.w.builder();
    const sample = g.input('sample', [B, c.inChannels, H, W]);
    const t = g.input('timestep', [B]);
    const context = g.input('encoder_hidden_states', [B, L, c.crossAttentionDim]);
    const extras: UNetExtras = {};
    if (c.timeCondProjDim) extras.timestepCond = g.input('timestep_cond', [B, c.timeCondProjDim]);
    if (c.textTime) {
      extras.textEmbeds = g.input('text_embeds', [B, this.textEmbedsDim]);
      extras.timeIds = g.input('time_ids', [B, 6]);
    }
    g.output('out', yield* this.describeParts(g, sample, t, context, extras));
    return g.build();
  }

  /** SDXL: the width of the pooled text embedding the added conditioning expects. */
  get textEmbedsDim(): number {
    return textEmbedsDim(this.config);
  }

  /**
   * Builds the network into `g`: sample [B, C, H, W] (NCHW), timestep [B], context [B, L, D]
   * -> the model output [B, C_out, H, W] (NCHW). Pipelines build it into their step graphs.
   */
  describe(g: GraphBuilder, sample: Value, t: Value, context: Value, extras: UNetExtras = {}, residuals?: UNetResiduals): Value {
    return describeNow(this.describeParts(g, sample, t, context, extras, residuals));
  }

  /** describe() as a description that pauses between blocks (see lib/graph/describe.ts). */
  *describeParts(g: GraphBuilder, sample: Value, t: Value, context: Value, extras: UNetExtras = {}, residuals?: UNetResiduals): Description<Value> {
    const c = this.config;
    const w = this.w;
    const ch0 = c.blockOutChannels[0];
    const tembDim = ch0 * 4;
    const enc = yield* encoderParts(g, w, c, g.toNHWC(sample), t, context, extras);
    const { temb } = enc;
    const skips = enc.skips;
    let x = enc.mid;
    // ControlNet: its residuals are added to the skips and the mid output before the up blocks use them
    if (residuals) {
      if (residuals.down.length !== skips.length) throw new ArgumentError(`${residuals.down.length} ControlNet down residuals for ${skips.length} UNet skip connections`);
      residuals.down.forEach((r, i) => (skips[i] = g.add(skips[i], r)));
      x = g.add(x, residuals.mid);
    }
    const res = (scope: Weights, v: Value, cin: number, cout: number) => resnet(g, scope, v, { inChannels: cin, outChannels: cout, groups: c.groups, eps: c.eps, temb, tembChannels: tembDim });
    const xformer = (scope: Weights, v: Value, heads: number, layers: number) =>
      transformer2d(g, scope, v, context, { channels: v.shape[3], heads, layers, contextDim: c.crossAttentionDim, groups: c.groups, linearProjection: c.useLinearProjection });

    // 5. up
    const rev = [...c.blockOutChannels].reverse();
    const revHeads = [...c.heads].reverse();
    const revLayers = [...c.layersPerBlock].reverse();
    let prevOut = rev[0];
    for (const [i, type] of c.upBlockTypes.entries()) {
      yield;
      const out = rev[i];
      const inCh = rev[Math.min(i + 1, rev.length - 1)];
      const blk = w.scope(`up_blocks.${i}`);
      const n = revLayers[i] + 1;
      for (let j = 0; j < n; j++) {
        const skip = skips.pop() as Value;
        const skipCh = j === n - 1 ? inCh : out;
        const resIn = j === 0 ? prevOut : out;
        if (skip.shape[3] !== skipCh) throw new ArgumentError(`up_blocks.${i}: skip connection has ${skip.shape[3]} channels, expected ${skipCh}`);
        x = res(blk.scope(`resnets.${j}`), g.concat(x, skip), resIn + skipCh, out);
        if (type === 'CrossAttnUpBlock2D') x = xformer(blk.scope(`attentions.${j}`), x, revHeads[i], c.upTransformerLayers[i]);
      }
      // to the next skip's size: twice this one, or less where the down path rounded up (odd sizes)
      const next = skips[skips.length - 1];
      if (i < rev.length - 1) x = upsample(g, blk.scope('upsamplers.0'), x, out, [next.shape[1], next.shape[2]]);
      prevOut = out;
    }

    // 6. out
    x = g.groupNorm(x, w.f32('conv_norm_out.weight', [ch0]), w.f32('conv_norm_out.bias', [ch0]), c.groups, c.eps, Act.Silu);
    const kOut = c.convOutKernel;
    x = g.conv2d(x, w.conv('conv_out.weight', [c.outChannels, ch0, kOut, kOut]), w.f32('conv_out.bias', [c.outChannels]), { padding: (kOut - 1) / 2 });
    return g.toNCHW(x);
  }

  async forward(inputs: UNetInputs, shape: { batch: number; height: number; width: number; contextLength: number }): Promise<NativeTensor> {
    const c = this.config;
    const graph = await this.graphs.getYielding(...this.standaloneSpec(shape.batch, shape.height, shape.width, shape.contextLength));
    const feed: Record<string, Float32Array | NativeTensor> = {
      sample: inputs.sample,
      timestep: inputs.timestep,
      encoder_hidden_states: inputs.encoderHiddenStates,
    };
    if (c.timeCondProjDim) {
      if (!inputs.timestepCond) throw new ArgumentError('this UNet (LCM) needs timestepCond, the guidance embedding');
      feed.timestep_cond = inputs.timestepCond;
    }
    if (c.textTime) {
      if (!inputs.textEmbeds || !inputs.timeIds) throw new ArgumentError('this UNet (SDXL) needs textEmbeds and timeIds');
      feed.text_embeds = inputs.textEmbeds;
      feed.time_ids = inputs.timeIds;
    }
    const out = await graph.run(feed);
    return out.out;
  }

  unusedWeights(): string[] {
    return this.w.unused();
  }

  /** The model's weights (LoRA fusion replaces some of them). */
  get weights(): Weights {
    return this.w;
  }

  /** Drops the compiled graphs (after the weights changed); they are rebuilt on next use. */
  resetGraphs(): void {
    this.graphs.clear();
  }

  dispose(): void {
    this.graphs.close();
    this.w.close();
  }
}
