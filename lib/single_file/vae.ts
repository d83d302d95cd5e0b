// The VAE of the original layout (`first_stage_model.`): structure from the header and the key
// table to diffusers' AutoencoderKL names. The decoder's levels are numbered from the lowest
// resolution in diffusers and from the highest in the original; mid-block attention projections
// are 1x1 convs there and linears here (same bytes).
import { ConfigError } from '../errors';
import type { Json } from '../models/config';
import type { ComponentPlan, HeaderIndex, Target } from './types';
import { indices, shapeOf, under } from './util';

const RESNET: Record<string, string> = { norm1: 'norm1', conv1: 'conv1', norm2: 'norm2', conv2: 'conv2', nin_shortcut: 'conv_shortcut' };
const ATTN: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };

export function planVAE(h: HeaderIndex, p: string): ComponentPlan {
  const levels = indices(h.keys(), `${p}encoder.down.`).length;
  const upLevels = indices(h.keys(), `${p}decoder.up.`).length;
  if (levels === 0 || upLevels !== levels) throw new ConfigError(`single-file checkpoint: the VAE has ${levels} encoder and ${upLevels} decoder levels`);
  const L = indices(h.keys(), `${p}encoder.down.0.block.`).length;
  const channels = Array.from({ length: levels }, (_, i) => shapeOf(h, `${p}encoder.down.${i}.block.0.conv1.weight`, `VAE level ${i}`)[0]);
  const tensors = new Map<string, Target>();
  for (const rest of under(h, p)) {
    const key = `${p}${rest}`;
    let m: RegExpExecArray | null;
    let name: string | undefined;
    let shape: number[] | undefined;
    if ((m = /^(encoder|decoder)\.(conv_in|conv_out)\.(weight|bias)$/.exec(rest))) name = rest;
    else if ((m = /^(quant_conv|post_quant_conv)\.(weight|bias)$/.exec(rest))) name = rest;
    else if ((m = /^(encoder|decoder)\.norm_out\.(weight|bias)$/.exec(rest))) name = `${m[1]}.conv_norm_out.${m[2]}`;
    else if ((m = /^encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$/.exec(rest)) && RESNET[m[3]]) {
      name = `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${RESNET[m[3]]}.${m[4]}`;
    } else if ((m = /^encoder\.down\.(\d+)\.downsample\.conv\.(weight|bias)$/.exec(rest))) {
      name = `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`;
    } else if ((m = /^decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)$/.exec(rest)) && RESNET[m[3]]) {
      name = `decoder.up_blocks.${levels - 1 - Number(m[1])}.resnets.${m[2]}.${RESNET[m[3]]}.${m[4]}`;
    } else if ((m = /^decoder\.up\.(\d+)\.upsample\.conv\.(weight|bias)$/.exec(rest))) {
      name = `decoder.up_blocks.${levels - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`;
    } else if ((m = /^(encoder|decoder)\.mid\.block_([12])\.(\w+)\.(weight|bias)$/.exec(rest)) && RESNET[m[3]]) {
      name = `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${RESNET[m[3]]}.${m[4]}`;
    } else if ((m = /^(encoder|decoder)\.mid\.attn_1\.(\w+)\.(weight|bias)$/.exec(rest)) && ATTN[m[2]]) {
      name = `${m[1]}.mid_block.attentions.0.${ATTN[m[2]]}.${m[3]}`;
      const s = (h.get(key) as { shape: number[] }).shape;
      if (m[2] !== 'norm' && m[3] === 'weight' && s.length === 4) {
        if (s[2] !== 1 || s[3] !== 1) throw new ConfigError(`single-file checkpoint: '${key}' is [${s.join(', ')}], expected a 1x1 kernel`);
        shape = [s[0], s[1]];
      }
    }
    if (name) tensors.set(name, shape ? { key, shape } : { key });
  }
  const convIn = shapeOf(h, `${p}encoder.conv_in.weight`, 'VAE encoder conv_in');
  const derived: Json = {
    in_channels: convIn[1],
    out_channels: shapeOf(h, `${p}decoder.conv_out.weight`, 'VAE decoder conv_out')[0],
    latent_channels: shapeOf(h, `${p}decoder.conv_in.weight`, 'VAE decoder conv_in')[1],
    block_out_channels: channels,
    layers_per_block: L,
    down_block_types: Array(levels).fill('DownEncoderBlock2D'),
    up_block_types: Array(levels).fill('UpDecoderBlock2D'),
    use_quant_conv: h.has(`${p}quant_conv.weight`),
    use_post_quant_conv: h.has(`${p}post_quant_conv.weight`),
    mid_block_add_attention: h.has(`${p}encoder.mid.attn_1.q.weight`),
  };
  return { derived, tensors };
}
