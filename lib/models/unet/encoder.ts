// The encoder half of UNet2DConditionModel — time embedding (+ LCM cond_proj, + SDXL text_time),
// conv_in, the down blocks and the mid block — which ControlNetModel copies: one module for both
// (a ControlNet is this with its own weights, a conditioning embedding added after conv_in, and
// a 1x1 "zero conv" on every skip and on the mid output). Activations are NHWC.
import { ArgumentError } from '../../errors';
import { Act, type GraphBuilder, type Value } from '../../graph';
import { type Description, describeNow } from '../../graph/describe';
import { downsample, resnet, timestepEmbedding, transformer2d } from '../blocks';
import type { Weights } from '../weights';
import type { UNetEncoderConfig } from './config';

/** The added conditioning a family's UNet needs (graph values). */
export interface UNetExtras {
  /** LCM: [B, time_cond_proj_dim] */
  timestepCond?: Value;
  /** SDXL: [B, pooled width] */
  textEmbeds?: Value;
  /** SDXL: [B, 6] */
  timeIds?: Value;
}

export interface EncoderOutput {
  /** silu(time embedding) [B, 4 * c0], shared by every resnet */
  temb: Value;
  /** the skip list: conv_in's output, then every resnet / attention and downsampler output (NHWC) */
  skips: Value[];
  /** the mid block's output (NHWC) */
  mid: Value;
}

/** Width of the SDXL pooled text embedding (projection input minus the six time-id embeddings). */
export function textEmbedsDim(c: UNetEncoderConfig): number {
  const tt = c.textTime;
  if (!tt) return 0;
  const d = tt.projectionInputDim - 6 * tt.timeEmbedDim;
  if (d <= 0) throw new ArgumentError(`projection_class_embeddings_input_dim ${tt.projectionInputDim} leaves no room for text_embeds`);
  return d;
}

/**
 * Builds the encoder half into `g`: x is the NHWC sample, `addToConvIn` (ControlNet's
 * conditioning embedding, NHWC) is added to conv_in's output.
 */
export function describeEncoder(g: GraphBuilder, w: Weights, c: UNetEncoderConfig, x: Value, t: Value, context: Value, extras: UNetExtras, addToConvIn?: Value): EncoderOutput {
  return describeNow(encoderParts(g, w, c, x, t, context, extras, addToConvIn));
}

/** describeEncoder as a description that pauses after each down block (see lib/graph/describe.ts). */
export function* encoderParts(g: GraphBuilder, w: Weights, c: UNetEncoderConfig, x: Value, t: Value, context: Value, extras: UNetExtras, addToConvIn?: Value): Description<EncoderOutput> {
  const [B] = x.shape;
  const ch0 = c.blockOutChannels[0];
  const tembDim = ch0 * 4;
  if (c.centerInputSample) x = g.affine(x, 2, -1);

  // 1. time embedding
  const tProj = g.timestepEmbedding(t, ch0, c.flipSinToCos, c.freqShift);
  if (c.timeCondProjDim && !extras.timestepCond) throw new ArgumentError('this UNet (LCM) needs timestep_cond, the guidance embedding');
  let emb = timestepEmbedding(g, w.scope('time_embedding'), tProj, { inDim: ch0, outDim: tembDim, act: c.act, condition: extras.timestepCond, condDim: c.timeCondProjDim });
  if (c.textTime) {
    const tt = c.textTime;
    if (!extras.textEmbeds || !extras.timeIds) throw new ArgumentError('this UNet (SDXL) needs text_embeds and time_ids');
    const idsEmb = g.reshape(g.timestepEmbedding(g.reshape(extras.timeIds, [B * 6]), tt.timeEmbedDim, c.flipSinToCos, c.freqShift), [B, 6 * tt.timeEmbedDim]);
    const aug = timestepEmbedding(g, w.scope('add_embedding'), g.concat(extras.textEmbeds, idsEmb), { inDim: tt.projectionInputDim, outDim: tembDim, act: c.act });
    emb = g.add(emb, aug);
  }
  const temb = g.act(emb, Act.Silu); // every resnet applies SiLU to emb first: once here

  const res = (scope: Weights, v: Value, cin: number, cout: number, outputScale = 1) =>
    resnet(g, scope, v, { inChannels: cin, outChannels: cout, groups: c.groups, eps: c.eps, temb, tembChannels: tembDim, outputScale });
  const xformer = (scope: Weights, v: Value, heads: number, layers: number) =>
    transformer2d(g, scope, v, context, { channels: v.shape[3], heads, layers, contextDim: c.crossAttentionDim, groups: c.groups, linearProjection: c.useLinearProjection });

  // 2. conv_in (+ the ControlNet's conditioning)
  const kIn = c.convInKernel;
  x = g.conv2d(x, w.conv('conv_in.weight', [ch0, c.inChannels, kIn, kIn]), w.f32('conv_in.bias', [ch0]), { padding: (kIn - 1) / 2, residual: addToConvIn });

  // 3. down
  const skips: Value[] = [x];
  let outCh = ch0;
  for (const [i, type] of c.downBlockTypes.entries()) {
    yield;
    const inCh = outCh;
    outCh = c.blockOutChannels[i];
    const blk = w.scope(`down_blocks.${i}`);
    for (let j = 0; j < c.layersPerBlock[i]; j++) {
      x = res(blk.scope(`resnets.${j}`), x, j === 0 ? inCh : outCh, outCh);
      if (type === 'CrossAttnDownBlock2D') x = xformer(blk.scope(`attentions.${j}`), x, c.heads[i], c.transformerLayers[i]);
      skips.push(x);
    }
    if (i < c.blockOutChannels.length - 1) {
      x = downsample(g, blk.scope('downsamplers.0'), x, outCh, c.downsamplePadding);
      skips.push(x);
    }
  }

  // 4. mid
  yield;
  const top = c.blockOutChannels[c.blockOutChannels.length - 1];
  const mid = w.scope('mid_block');
  x = res(mid.scope('resnets.0'), x, top, top, c.midBlockScale);
  x = xformer(mid.scope('attentions.0'), x, c.heads[c.heads.length - 1], c.transformerLayers[c.transformerLayers.length - 1]);
  x = res(mid.scope('resnets.1'), x, top, top, c.midBlockScale);
  return { temb, skips, mid: x };
}
