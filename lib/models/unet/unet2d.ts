// UNet2DModel as ConsistencyDecoderVAE uses it (diffusers key names): learned timestep embedding,
// ResnetDownsampleBlock2D / ResnetUpsampleBlock2D with "scale_shift" resnets, UNetMidBlock2D
// without attention. Builds into a caller's graph (the consistency decoder runs it twice per graph).
import { Act, type GraphBuilder, type Value } from '../../graph';
import { resnet, timestepEmbedding } from '../blocks';
import type { Weights } from '../weights';

export interface UNet2DSpec {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  groups: number;
  eps: number;
  numTrainTimesteps: number;
}

/** x NHWC [B, H, W, inChannels], t I64 [B] -> NHWC [B, H, W, outChannels]. */
export function unet2d(g: GraphBuilder, w: Weights, x: Value, t: Value, s: UNet2DSpec): Value {
  const ch0 = s.blockOutChannels[0];
  const tembDim = ch0 * 4;
  const tEmb = g.embedding(t, w.matrix('time_proj.weight', [s.numTrainTimesteps, ch0]));
  const emb = timestepEmbedding(g, w.scope('time_embedding'), tEmb, { inDim: ch0, outDim: tembDim, act: Act.Silu });
  const temb = g.act(emb, Act.Silu);
  const res = (scope: Weights, v: Value, cin: number, cout: number, more: { down?: boolean; up?: boolean } = {}) =>
    resnet(g, scope, v, { inChannels: cin, outChannels: cout, groups: s.groups, eps: s.eps, temb, tembChannels: tembDim, scaleShift: true, ...more });

  x = g.conv2d(x, w.conv('conv_in.weight', [ch0, s.inChannels, 3, 3]), w.f32('conv_in.bias', [ch0]), { padding: 1 });
  const skips: Value[] = [x];
  let out = ch0;
  s.blockOutChannels.forEach((outCh, i) => {
    const inCh = out;
    out = outCh;
    const blk = w.scope(`down_blocks.${i}`);
    for (let j = 0; j < s.layersPerBlock; j++) {
      x = res(blk.scope(`resnets.${j}`), x, j === 0 ? inCh : out, out);
      skips.push(x);
    }
    if (i < s.blockOutChannels.length - 1) {
      x = res(blk.scope('downsamplers.0'), x, out, out, { down: true });
      skips.push(x);
    }
  });
  const top = s.blockOutChannels[s.blockOutChannels.length - 1];
  x = res(w.scope('mid_block.resnets.0'), x, top, top);
  x = res(w.scope('mid_block.resnets.1'), x, top, top);
  const rev = [...s.blockOutChannels].reverse();
  let prev = rev[0];
  rev.forEach((o, i) => {
    const inCh = rev[Math.min(i + 1, rev.length - 1)];
    const blk = w.scope(`up_blocks.${i}`);
    const n = s.layersPerBlock + 1;
    for (let j = 0; j < n; j++) {
      const skip = skips.pop() as Value;
      const skipCh = j === n - 1 ? inCh : o;
      x = res(blk.scope(`resnets.${j}`), g.concat(x, skip), (j === 0 ? prev : o) + skipCh, o);
    }
    if (i < rev.length - 1) x = res(blk.scope('upsamplers.0'), x, o, o, { up: true });
    prev = o;
  });
  x = g.groupNorm(x, w.f32('conv_norm_out.weight', [ch0]), w.f32('conv_norm_out.bias', [ch0]), s.groups, s.eps, Act.Silu);
  return g.conv2d(x, w.conv('conv_out.weight', [s.outChannels, ch0, 3, 3]), w.f32('conv_out.bias', [s.outChannels]), { padding: 1 });
}
