// AutoencoderTiny (TAESD / TAESDXL): EncoderTiny and DecoderTiny as diffusers builds them
// (nn.Sequential `layers.N` keys). Encoder input (x + 1) / 2; decoder input tanh(x / 3) * 3 and
// output x * 2 - 1. Latents are the UNet's own (scaling_factor 1).
import { ArgumentError } from '../../errors';
import type { Act, CompiledGraph, GraphBuilder, Value } from '../../graph';
import { type Description, GraphCache } from '../../graph/describe';
import type { NativeTensor } from '../../native';
import { Checkpoint } from '../../safetensors';
import { type ModelLoadOptions, Weights } from '../weights';
import { type AutoencoderTinyConfig, readAutoencoderTinyConfig } from './config';

/** AutoencoderTinyBlock: act(conv(act(conv(act(conv(x))))) + skip(x)). */
function tinyBlock(g: GraphBuilder, w: Weights, x: Value, cin: number, cout: number, act: Act): Value {
  let h = g.conv2d(x, w.conv('conv.0.weight', [cout, cin, 3, 3]), w.f32('conv.0.bias', [cout]), { padding: 1, act });
  h = g.conv2d(h, w.conv('conv.2.weight', [cout, cout, 3, 3]), w.f32('conv.2.bias', [cout]), { padding: 1, act });
  const skip = cin !== cout ? g.conv2d(x, w.conv('skip.weight', [cout, cin, 1, 1])) : x;
  h = g.conv2d(h, w.conv('conv.4.weight', [cout, cout, 3, 3]), w.f32('conv.4.bias', [cout]), { padding: 1, residual: skip });
  return g.act(h, act);
}

export class AutoencoderTiny {
  private readonly graphs = new GraphCache<CompiledGraph>('taesd');

  constructor(
    readonly config: AutoencoderTinyConfig,
    private readonly w: Weights,
  ) {}

  static fromPretrained(dir: string, options: ModelLoadOptions = {}): AutoencoderTiny {
    const config = readAutoencoderTinyConfig(dir);
    const checkpoint = Checkpoint.open(dir, { variant: options.variant });
    return new AutoencoderTiny(config, Weights.of(checkpoint, `taesd ${dir}`, options));
  }

  get downscale(): number {
    return this.config.upsamplingFactor ** (this.config.decoderChannels.length - 1);
  }

  private *encoderGraph(B: number, H: number, W: number): Description<CompiledGraph> {
    const c = this.config;
    const g = this.w.builder();
    const w = this.w.scope('encoder.layers');
    let x = g.affine(g.toNHWC(g.input('image', [B, c.inChannels, H, W])), 0.5, 0.5);
    let k = 0;
    for (const [i, ch] of c.encoderChannels.entries()) {
      yield;
      if (i === 0) {
        x = g.conv2d(x, w.conv(`${k}.weight`, [ch, c.inChannels, 3, 3]), w.f32(`${k}.bias`, [ch]), { padding: 1 });
      } else {
        const prev = c.encoderChannels[i - 1];
        if (prev !== ch) throw new ArgumentError('AutoencoderTiny needs the same width in every encoder block (as diffusers does)');
        x = g.conv2d(x, w.conv(`${k}.weight`, [ch, ch, 3, 3]), undefined, { padding: 1, stride: 2 });
      }
      k++;
      for (let b = 0; b < c.encoderBlocks[i]; b++) x = tinyBlock(g, w.scope(String(k++)), x, ch, ch, c.act);
    }
    const last = c.encoderChannels[c.encoderChannels.length - 1];
    x = g.conv2d(x, w.conv(`${k}.weight`, [c.latentChannels, last, 3, 3]), w.f32(`${k}.bias`, [c.latentChannels]), { padding: 1 });
    g.output('latents', g.toNCHW(x));
    return g.build();
  }

  private *decoderGraph(B: number, h: number, w0: number): Description<CompiledGraph> {
    const c = this.config;
    const g = this.w.builder();
    const w = this.w.scope('decoder.layers');
    const ch = c.decoderChannels;
    let x = g.unary(g.toNHWC(g.input('latents', [B, c.latentChannels, h, w0])), { act: 6 /* tanh */, a: 1 / 3, c: 3 });
    x = g.conv2d(x, w.conv('0.weight', [ch[0], c.latentChannels, 3, 3]), w.f32('0.bias', [ch[0]]), { padding: 1, act: c.act });
    let k = 2;
    for (const [i, n] of ch.entries()) {
      yield;
      const final = i === ch.length - 1;
      if (i > 0 && ch[i - 1] !== n) throw new ArgumentError('AutoencoderTiny needs the same width in every decoder block (as diffusers does)');
      for (let b = 0; b < c.decoderBlocks[i]; b++) x = tinyBlock(g, w.scope(String(k++)), x, n, n, c.act);
      let up = 1;
      if (!final) {
        up = c.upsamplingFactor;
        k++; // nn.Upsample has no weights
      }
      const outCh = final ? c.outChannels : n;
      x = g.conv2d(x, w.conv(`${k}.weight`, [outCh, n, 3, 3]), final ? w.f32(`${k}.bias`, [outCh]) : undefined, { padding: 1, upsample: up });
      k++;
    }
    g.output('image', g.toNCHW(g.affine(x, 2, -1)));
    return g.build();
  }

  private decoderSpec(batch: number, height: number, width: number): [string, () => Description<CompiledGraph>] {
    return [`dec${batch}x${height}x${width}`, () => this.decoderGraph(batch, height, width)];
  }

  private encoderSpec(batch: number, height: number, width: number): [string, () => Description<CompiledGraph>] {
    return [`enc${batch}x${height}x${width}`, () => this.encoderGraph(batch, height, width)];
  }

  decoderGraphFor(batch: number, height: number, width: number): CompiledGraph {
    return this.graphs.get(...this.decoderSpec(batch, height, width));
  }

  encoderGraphFor(batch: number, height: number, width: number): CompiledGraph {
    return this.graphs.get(...this.encoderSpec(batch, height, width));
  }

  /** Builds every graph once at the smallest size (with recording weights: lists the weights). */
  buildGraphs(): void {
    this.encoderGraphFor(1, this.downscale, this.downscale);
    this.decoderGraphFor(1, 1, 1);
  }

  async encode(image: Float32Array | NativeTensor, shape: { batch: number; height: number; width: number }): Promise<NativeTensor> {
    const f = this.downscale;
    if (shape.height % f || shape.width % f) throw new ArgumentError(`image size ${shape.height}x${shape.width} must be divisible by ${f}`);
    const graph = await this.graphs.getYielding(...this.encoderSpec(shape.batch, shape.height, shape.width));
    return (await graph.run({ image })).latents;
  }

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
