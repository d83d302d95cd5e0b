// ControlNetModel (diffusers module tree and key names): the UNet's encoder half with its own
// weights (lib/models/unet/encoder.ts, the same module the UNet builds), the conditioning
// embedding of the control image added after conv_in, and a 1x1 "zero convolution" on every skip
// and on the mid output. Its residuals, scaled per step, are added to the UNet's skips and mid
// output (UNet2DConditionModel.describe's `residuals`).
import { ArgumentError } from '../../errors';
import { Act, type CompiledGraph, type GraphBuilder, type Value } from '../../graph';
import { type Description, GraphCache } from '../../graph/describe';
import type { NativeTensor } from '../../native';
import { Checkpoint, type TensorSource } from '../../safetensors';
import type { Json } from '../config';
import { type UNetExtras, describeEncoder, textEmbedsDim } from '../unet/encoder';
import type { UNetResiduals } from '../unet/unet';
import { type ModelLoadOptions, type ModelTarget, Weights } from '../weights';
import { type ControlNetConfig, parseControlNetConfig, readControlNetConfig } from './config';

export interface ControlNetInputs {
  sample: Float32Array | NativeTensor;
  timestep: Float32Array | NativeTensor;
  encoderHiddenStates: Float32Array | NativeTensor;
  /** [B, 3, 8h, 8w] in [0, 1] (NCHW) */
  controlnetCond: Float32Array | NativeTensor;
  /** one factor per residual (down..., mid): conditioning_scale, or guess mode's logspace * scale */
  scales: Float32Array;
  textEmbeds?: Float32Array | NativeTensor;
  timeIds?: Float32Array | NativeTensor;
}

/** torch.logspace(start, end, n) in float32 (PyTorch's CPU kernel: a float step, both halves from their own end). */
function logspace32(start: number, end: number, n: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = f(10 ** f(start));
    return out;
  }
  const step = f(f(end - start) / f(n - 1));
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = f(10 ** (i < half ? f(start + f(step * i)) : f(end - f(step * (n - i - 1)))));
  return out;
}

/** diffusers' per-residual factors: conditioning_scale each, or (guess mode) logspace(-1, 0, N + 1) * conditioning_scale (float32). */
export function residualScales(count: number, conditioningScale: number, guessMode: boolean): Float32Array {
  const s = Math.fround(conditioningScale);
  if (!guessMode) return new Float32Array(count).fill(s);
  return logspace32(-1, 0, count).map((v) => Math.fround(v * s));
}

export class ControlNetModel {
  private readonly graphs = new GraphCache<CompiledGraph>('controlnet');

  constructor(
    readonly config: ControlNetConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): ControlNetModel {
    const config = readControlNetConfig(dir);
    return new ControlNetModel(config, Weights.of(Checkpoint.open(dir, { variant: options.variant }), `controlnet ${dir}`, options));
  }

  static fromSource(config: Json, source: TensorSource, label: string, target: ModelTarget = {}): ControlNetModel {
    return new ControlNetModel(parseControlNetConfig(config, label), Weights.of(source, `controlnet ${label}`, target));
  }

  /** Residuals it gives: one per skip connection of the UNet, then the mid block's. */
  get numResiduals(): number {
    const c = this.config;
    return 1 + c.layersPerBlock.reduce((a, b) => a + b, 0) + (c.blockOutChannels.length - 1) + 1;
  }

  get textEmbedsDim(): number {
    return textEmbedsDim(this.config);
  }

  get weights(): Weights {
    return this.w;
  }

  /** ControlNetConditioningEmbedding: control image (NHWC, [0, 1]) -> [B, 8x smaller, c0]. */
  private conditioningEmbedding(g: GraphBuilder, cond: Value): Value {
    const c = this.config;
    const e = this.w.scope('controlnet_cond_embedding');
    const ch = c.conditioningEmbeddingOutChannels;
    let x = g.conv2d(cond, e.conv('conv_in.weight', [ch[0], c.conditioningChannels, 3, 3]), e.f32('conv_in.bias', [ch[0]]), { padding: 1, act: Act.Silu });
    for (let i = 0; i + 1 < ch.length; i++) {
      x = g.conv2d(x, e.conv(`blocks.${2 * i}.weight`, [ch[i], ch[i], 3, 3]), e.f32(`blocks.${2 * i}.bias`, [ch[i]]), { padding: 1, act: Act.Silu });
      x = g.conv2d(x, e.conv(`blocks.${2 * i + 1}.weight`, [ch[i + 1], ch[i], 3, 3]), e.f32(`blocks.${2 * i + 1}.bias`, [ch[i + 1]]), { padding: 1, stride: 2, act: Act.Silu });
    }
    const c0 = c.blockOutChannels[0];
    return g.conv2d(x, e.conv('conv_out.weight', [c0, ch[ch.length - 1], 3, 3]), e.f32('conv_out.bias', [c0]), { padding: 1 });
  }

  /**
   * Builds the ControlNet into `g`: sample [B, C, h, w] and controlnetCond [B, 3, 8h, 8w] (NCHW),
   * timestep [B], context [B, L, D], scales [numResiduals] -> the scaled residuals (NHWC).
   */
  describe(g: GraphBuilder, sample: Value, t: Value, context: Value, controlnetCond: Value, scales: Value, extras: UNetExtras = {}): UNetResiduals {
    const c = this.config;
    const [B, , h, w] = sample.shape;
    const [cb, cc, ch, cw] = controlnetCond.shape;
    if (cb !== B || cc !== c.conditioningChannels) throw new ArgumentError(`controlnet_cond must be [${B}, ${c.conditioningChannels}, H, W], got [${controlnetCond.shape}]`);
    let cond = g.toNHWC(controlnetCond);
    if (c.channelOrder === 'bgr') {
      // torch.flip(cond, dims=[1]): the channels in reverse
      const parts = Array.from({ length: cc }, (_, i) => g.slice(cond, 3, cc - 1 - i, 1));
      cond = parts.slice(1).reduce((a, b) => g.concat(a, b), parts[0]);
    }
    const hint = this.conditioningEmbedding(g, cond);
    if (hint.shape[1] !== h || hint.shape[2] !== w) {
      throw new ArgumentError(`the control image ${cw}x${ch} gives a ${hint.shape[2]}x${hint.shape[1]} embedding for ${w}x${h} latents: it must be ${8 * w}x${8 * h} pixels`);
    }
    const enc = describeEncoder(g, this.w, c, g.toNHWC(sample), t, context, extras, hint);
    const n = this.numResiduals;
    if (scales.shape.length !== 1 || scales.shape[0] !== n) throw new ArgumentError(`scales must be [${n}], got [${scales.shape}]`);
    const factor = (i: number) => g.slice(scales, 0, i, 1);
    const zeroConv = (name: string, x: Value, i: number) => {
      const ch0 = x.shape[3];
      return g.mul(g.conv2d(x, this.w.conv(`${name}.weight`, [ch0, ch0, 1, 1]), this.w.f32(`${name}.bias`, [ch0])), factor(i));
    };
    const down = enc.skips.map((s, i) => zeroConv(`controlnet_down_blocks.${i}`, s, i));
    const mid = zeroConv('controlnet_mid_block', enc.mid, n - 1);
    return { down, mid };
  }

  /** Builds the graph once at the smallest size (with recording weights: lists the weights). */
  buildGraphs(): void {
    const f = 2 ** (this.config.blockOutChannels.length - 1);
    this.graph(1, f, f, 77);
  }

  /** A standalone graph: inputs as ControlNetInputs (NCHW), outputs down_0.. and mid (NCHW). */
  graph(batch: number, height: number, width: number, contextLength: number): CompiledGraph {
    return this.graphs.get(...this.standaloneSpec(batch, height, width, contextLength));
  }

  private standaloneSpec(batch: number, height: number, width: number, contextLength: number): [string, () => Description<CompiledGraph>] {
    return [`${batch}x${height}x${width}x${contextLength}`, () => this.standalone(batch, height, width, contextLength)];
  }

  private *standalone(batch: number, height: number, width: number, contextLength: number): Description<CompiledGraph> {
    const c = this.config;
    const g = this.w.builder();
    const sample = g.input('sample', [batch, c.inChannels, height, width]);
    const t = g.input('timestep', [batch]);
    const context = g.input('encoder_hidden_states', [batch, contextLength, c.crossAttentionDim]);
    const cond = g.input('controlnet_cond', [batch, c.conditioningChannels, 8 * height, 8 * width]);
    const scales = g.input('scales', [this.numResiduals]);
    const extras: UNetExtras = {};
    if (c.textTime) {
      extras.textEmbeds = g.input('text_embeds', [batch, this.textEmbedsDim]);
      extras.timeIds = g.input('time_ids', [batch, 6]);
    }
    yield;
    const r = this.describe(g, sample, t, context, cond, scales, extras);
    r.down.forEach((d, i) => g.output(`down_${i}`, g.toNCHW(d)));
    g.output('mid', g.toNCHW(r.mid));
    return g.build();
  }

  async forward(inputs: ControlNetInputs, shape: { batch: number; height: number; width: number; contextLength: number }): Promise<{ down: NativeTensor[]; mid: NativeTensor }> {
    const graph = await this.graphs.getYielding(...this.standaloneSpec(shape.batch, shape.height, shape.width, shape.contextLength));
    const feed: Record<string, Float32Array | NativeTensor> = {
      sample: inputs.sample,
      timestep: inputs.timestep,
      encoder_hidden_states: inputs.encoderHiddenStates,
      controlnet_cond: inputs.controlnetCond,
      scales: inputs.scales,
    };
    if (this.config.textTime) {
      if (!inputs.textEmbeds || !inputs.timeIds) throw new ArgumentError('this ControlNet (SDXL) needs textEmbeds and timeIds');
      feed.text_embeds = inputs.textEmbeds;
      feed.time_ids = inputs.timeIds;
    }
    const out = await graph.run(feed);
    const down = Array.from({ length: this.numResiduals - 1 }, (_, i) => out[`down_${i}`]);
    return { down, mid: out.mid };
  }

  unusedWeights(): string[] {
    return this.w.unused();
  }

  resetGraphs(): void {
    this.graphs.clear();
  }

  dispose(): void {
    this.graphs.close();
    this.w.close();
  }
}
