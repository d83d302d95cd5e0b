// The AutoencoderKL encoder (diffusers Encoder + quant_conv + DiagonalGaussianDistribution), shared
// by AutoencoderKL and ConsistencyDecoderVAE.
import { Act, type GraphBuilder, type Value } from '../../graph';
import type { Description } from '../../graph/describe';
import { attention, downsample, resnet } from '../blocks';
import type { Weights } from '../weights';

export interface KLEncoderSpec {
  inChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  groups: number;
  latentChannels: number;
  midBlockAttention: boolean;
  useQuantConv: boolean;
}

export interface KLEncoded {
  mean: Value;
  logvar: Value;
  std: Value;
}

/** UNetMidBlock2D of the VAEs: resnet, (single-head attention with GroupNorm), resnet. */
export function klMidBlock(g: GraphBuilder, w: Weights, x: Value, ch: number, groups: number, withAttention: boolean): Value {
  const res = (s: Weights, v: Value) => resnet(g, s, v, { inChannels: ch, outChannels: ch, groups, eps: 1e-6 });
  x = res(w.scope('resnets.0'), x);
  if (withAttention) {
    const a = w.scope('attentions.0');
    const [B, H, W] = x.shape;
    const h = g.groupNorm(x, a.f32('group_norm.weight', [ch]), a.f32('group_norm.bias', [ch]), groups, 1e-6);
    const tokens = g.reshape(h, [B, H * W, ch]);
    const y = attention(g, a, tokens, undefined, { queryDim: ch, heads: 1, headDim: ch, qkvBias: true, residual: g.reshape(x, [B, H * W, ch]) });
    x = g.reshape(y, [B, H, W, ch]);
  }
  return res(w.scope('resnets.1'), x);
}

/**
 * image NHWC -> { mean, logvar (clamped to [-30, 20]), std } NHWC. `root` holds `encoder.*` and
 * `quant_conv.*`; pauses between down blocks (graph/describe.ts).
 */
export function* klEncodeParts(g: GraphBuilder, root: Weights, x: Value, s: KLEncoderSpec): Description<KLEncoded> {
  const w = root.scope('encoder');
  const ch = s.blockOutChannels;
  x = g.conv2d(x, w.conv('conv_in.weight', [ch[0], s.inChannels, 3, 3]), w.f32('conv_in.bias', [ch[0]]), { padding: 1 });
  let out = ch[0];
  for (const [i, outCh] of ch.entries()) {
    yield;
    const inCh = out;
    out = outCh;
    const blk = w.scope(`down_blocks.${i}`);
    for (let j = 0; j < s.layersPerBlock; j++) {
      x = resnet(g, blk.scope(`resnets.${j}`), x, { inChannels: j === 0 ? inCh : out, outChannels: out, groups: s.groups, eps: 1e-6 });
    }
    if (i < ch.length - 1) x = downsample(g, blk.scope('downsamplers.0'), x, out, 0);
  }
  yield;
  const top = ch[ch.length - 1];
  x = klMidBlock(g, w.scope('mid_block'), x, top, s.groups, s.midBlockAttention);
  x = g.groupNorm(x, w.f32('conv_norm_out.weight', [top]), w.f32('conv_norm_out.bias', [top]), s.groups, 1e-6, Act.Silu);
  const z2 = 2 * s.latentChannels;
  x = g.conv2d(x, w.conv('conv_out.weight', [z2, top, 3, 3]), w.f32('conv_out.bias', [z2]), { padding: 1 });
  if (s.useQuantConv) x = g.conv2d(x, root.conv('quant_conv.weight', [z2, z2, 1, 1]), root.f32('quant_conv.bias', [z2]));
  const z = s.latentChannels;
  const mean = g.slice(x, 3, 0, z);
  const logvar = g.unary(g.slice(x, 3, z, z), { lo: -30, hi: 20 });
  const std = g.unary(logvar, { act: Act.Exp, a: 0.5 });
  return { mean, logvar, std };
}
