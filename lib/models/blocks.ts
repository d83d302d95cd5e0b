// Building blocks shared by the UNets and VAEs, each mirroring its diffusers module and key
// names: ResnetBlock2D, Attention (transformer and VAE flavours), BasicTransformerBlock,
// Transformer2DModel, Downsample2D, Upsample2D, TimestepEmbedding. Activations are NHWC.
import { Act, type GraphBuilder, type Value } from '../graph';
import type { Weights } from './weights';

export interface ResnetOptions {
  inChannels: number;
  outChannels: number;
  groups: number;
  eps: number;
  /** silu(temb) [B, tembChannels], shared by every resnet of a UNet; absent in VAEs */
  temb?: Value;
  tembChannels?: number;
  /** time_embedding_norm "scale_shift": norm2(h) * (1 + scale) + shift instead of h + temb */
  scaleShift?: boolean;
  /** resample inside the block (ResnetBlock2D down=True / up=True): 2x2 average pool or nearest x2 */
  down?: boolean;
  up?: boolean;
  /** (x + h) / outputScale */
  outputScale?: number;
}

/** diffusers ResnetBlock2D (SiLU; time_embedding_norm "default" or "scale_shift"). */
export function resnet(g: GraphBuilder, w: Weights, x: Value, o: ResnetOptions): Value {
  const { inChannels: cin, outChannels: cout } = o;
  let h = g.groupNorm(x, w.f32('norm1.weight', [cin]), w.f32('norm1.bias', [cin]), o.groups, o.eps, Act.Silu);
  if (o.down) {
    x = g.avgPool(x, 2);
    h = g.avgPool(h, 2);
  } else if (o.up) {
    x = g.upsample(x, 2);
  }
  h = g.conv2d(h, w.conv('conv1.weight', [cout, cin, 3, 3]), w.f32('conv1.bias', [cout]), { padding: 1, upsample: o.up ? 2 : 1 });
  if (o.temb && o.scaleShift) {
    const t = g.linear(o.temb, w.matrix('time_emb_proj.weight', [2 * cout, o.tembChannels as number]), w.f32('time_emb_proj.bias', [2 * cout]));
    const B = t.shape[0];
    const scale = g.reshape(g.affine(g.slice(t, 1, 0, cout), 1, 1), [B, 1, 1, cout]);
    const shift = g.reshape(g.slice(t, 1, cout, cout), [B, 1, 1, cout]);
    h = g.groupNorm(h, w.f32('norm2.weight', [cout]), w.f32('norm2.bias', [cout]), o.groups, o.eps);
    h = g.act(g.add(g.mul(h, scale), shift), Act.Silu);
  } else {
    if (o.temb) {
      const t = g.linear(o.temb, w.matrix('time_emb_proj.weight', [cout, o.tembChannels as number]), w.f32('time_emb_proj.bias', [cout]));
      h = g.add(h, g.reshape(t, [t.shape[0], 1, 1, cout]));
    }
    h = g.groupNorm(h, w.f32('norm2.weight', [cout]), w.f32('norm2.bias', [cout]), o.groups, o.eps, Act.Silu);
  }
  const shortcut = cin !== cout ? g.conv2d(x, w.conv('conv_shortcut.weight', [cout, cin, 1, 1]), w.f32('conv_shortcut.bias', [cout])) : x;
  const y = g.conv2d(h, w.conv('conv2.weight', [cout, cout, 3, 3]), w.f32('conv2.bias', [cout]), { padding: 1, residual: shortcut });
  const scale = o.outputScale ?? 1;
  return scale === 1 ? y : g.affine(y, 1 / scale);
}

/** Downsample2D with a conv: stride 2, symmetric `padding`, or (0, 1, 0, 1) when padding is 0 (VAE). */
export function downsample(g: GraphBuilder, w: Weights, x: Value, channels: number, padding: number): Value {
  const pad: [number, number, number, number] = padding === 0 ? [0, 0, 1, 1] : [padding, padding, padding, padding];
  return g.conv2d(x, w.conv('conv.weight', [channels, channels, 3, 3]), w.f32('conv.bias', [channels]), { stride: 2, padding: pad });
}

/**
 * Upsample2D: nearest x2 then a 3x3 conv (fused into one op), or, given `size` [h, w] that is not
 * twice the input (diffusers' upsample_size, for latents not divisible by the UNet's down factor),
 * a nearest resize to that size then the conv.
 */
export function upsample(g: GraphBuilder, w: Weights, x: Value, channels: number, size?: readonly [number, number]): Value {
  const weight = w.conv('conv.weight', [channels, channels, 3, 3]);
  const bias = w.f32('conv.bias', [channels]);
  if (size && (size[0] !== 2 * x.shape[1] || size[1] !== 2 * x.shape[2])) return g.conv2d(g.resizeNearest(x, size[0], size[1]), weight, bias, { padding: 1 });
  return g.conv2d(x, weight, bias, { padding: 1, upsample: 2 });
}

/** A 2-D linear weight, also accepted in the 1x1-conv form [N, K, 1, 1] some checkpoints use. */
function pointwise(g: GraphBuilder, w: Weights, x: Value, name: string, n: number, k: number, bias: boolean, residual?: Value): Value {
  const b = bias ? w.f32(`${name}.bias`, [n]) : undefined;
  const info = w.has(`${name}.weight`) ? w.shapeOf(`${name}.weight`) : undefined;
  if (info && info.length === 4) {
    const conv = w.conv(`${name}.weight`, [n, k, 1, 1]);
    const flat = g.reshape(x, [x.shape.reduce((p, q) => p * q, 1) / k, 1, 1, k]);
    const y = g.conv2d(flat, conv, b, { residual: residual ? g.reshape(residual, [flat.shape[0], 1, 1, n]) : undefined });
    return g.reshape(y, [...x.shape.slice(0, -1), n]);
  }
  return g.linear(x, w.matrix(`${name}.weight`, [n, k]), b, { residual });
}

export interface AttentionOptions {
  queryDim: number;
  /** width of the context (cross attention); undefined = self attention */
  contextDim?: number;
  heads: number;
  headDim: number;
  /** q/k/v projections have biases (VAE attention) */
  qkvBias: boolean;
  residual?: Value;
}

/** diffusers Attention core: to_q / to_k / to_v, scaled dot-product attention, to_out.0 (+ residual). */
export function attention(g: GraphBuilder, w: Weights, x: Value, context: Value | undefined, o: AttentionOptions): Value {
  const inner = o.heads * o.headDim;
  const ctx = context ?? x;
  const kvDim = o.contextDim ?? o.queryDim;
  const q = pointwise(g, w, x, 'to_q', inner, o.queryDim, o.qkvBias);
  const k = pointwise(g, w, ctx, 'to_k', inner, kvDim, o.qkvBias);
  const v = pointwise(g, w, ctx, 'to_v', inner, kvDim, o.qkvBias);
  const a = g.attention(q, k, v, o.heads, 1 / Math.sqrt(o.headDim));
  return pointwise(g, w, a, 'to_out.0', o.queryDim, inner, true, o.residual);
}

/** BasicTransformerBlock (layer_norm, self attention, cross attention, GEGLU feed-forward). */
export function transformerBlock(g: GraphBuilder, w: Weights, x: Value, context: Value, o: { dim: number; heads: number; headDim: number; contextDim: number }): Value {
  const { dim } = o;
  const ln = (name: string, v: Value) => g.layerNorm(v, w.f32(`${name}.weight`, [dim]), w.f32(`${name}.bias`, [dim]), 1e-5);
  let h = attention(g, w.scope('attn1'), ln('norm1', x), undefined, { queryDim: dim, heads: o.heads, headDim: o.headDim, qkvBias: false, residual: x });
  h = attention(g, w.scope('attn2'), ln('norm2', h), context, { queryDim: dim, contextDim: o.contextDim, heads: o.heads, headDim: o.headDim, qkvBias: false, residual: h });
  const inner = dim * 4;
  const ff = w.scope('ff.net');
  let f = g.linear(ln('norm3', h), ff.matrix('0.proj.weight', [inner * 2, dim]), ff.f32('0.proj.bias', [inner * 2]));
  f = g.geglu(f);
  return g.linear(f, ff.matrix('2.weight', [dim, inner]), ff.f32('2.bias', [dim]), { residual: h });
}

/** Transformer2DModel (continuous input): GroupNorm, proj_in (conv 1x1 or linear), blocks, proj_out, + residual. */
export function transformer2d(
  g: GraphBuilder,
  w: Weights,
  x: Value,
  context: Value,
  o: { channels: number; heads: number; layers: number; contextDim: number; groups: number; linearProjection: boolean },
): Value {
  const [B, H, W, C] = x.shape;
  const inner = o.heads * Math.floor(C / o.heads);
  const headDim = inner / o.heads;
  let h = g.groupNorm(x, w.f32('norm.weight', [C]), w.f32('norm.bias', [C]), o.groups, 1e-6);
  const proj = (name: string, v: Value, n: number, k: number, residual?: Value) =>
    o.linearProjection
      ? g.linear(v, w.matrix(`${name}.weight`, [n, k]), w.f32(`${name}.bias`, [n]), { residual })
      : g.conv2d(v, w.conv(`${name}.weight`, [n, k, 1, 1]), w.f32(`${name}.bias`, [n]), { residual });
  h = proj('proj_in', h, inner, C);
  let t = g.reshape(h, [B, H * W, inner]);
  for (let i = 0; i < o.layers; i++) {
    t = transformerBlock(g, w.scope(`transformer_blocks.${i}`), t, context, { dim: inner, heads: o.heads, headDim, contextDim: o.contextDim });
  }
  return proj('proj_out', g.reshape(t, [B, H, W, inner]), C, inner, x);
}

/** TimestepEmbedding: (+ cond_proj(condition)), linear_1, act, linear_2. */
export function timestepEmbedding(g: GraphBuilder, w: Weights, x: Value, o: { inDim: number; outDim: number; act: Act; condition?: Value; condDim?: number }): Value {
  let h = x;
  if (o.condition) h = g.linear(o.condition, w.matrix('cond_proj.weight', [o.inDim, o.condDim as number]), undefined, { residual: h });
  h = g.linear(h, w.matrix('linear_1.weight', [o.outDim, o.inDim]), w.f32('linear_1.bias', [o.outDim]), { act: o.act });
  return g.linear(h, w.matrix('linear_2.weight', [o.outDim, o.outDim]), w.f32('linear_2.bias', [o.outDim]));
}
