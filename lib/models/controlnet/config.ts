// ControlNetModel config.json: the encoder half of the UNet it was made from (read by the UNet's
// own parser, so both reject the same unsupported fields), plus the conditioning embedding.
import * as path from 'path';
import { ConfigReader, type Json, readJsonFile } from '../config';
import { type UNetEncoderConfig, parseEncoderFields } from '../unet/config';

export interface ControlNetConfig extends UNetEncoderConfig {
  /** channels of the control image (3) */
  conditioningChannels: number;
  /** widths of ControlNetConditioningEmbedding: conv_in, then a 3x3 + a stride-2 3x3 per next entry */
  conditioningEmbeddingOutChannels: number[];
  /** 'bgr' flips the control image's channels first */
  channelOrder: 'rgb' | 'bgr';
}

export function readControlNetConfig(dir: string): ControlNetConfig {
  const file = path.join(dir, 'config.json');
  return parseControlNetConfig(readJsonFile(file), file);
}

export function parseControlNetConfig(json: Json, label: string): ControlNetConfig {
  const c = new ConfigReader(json, label);
  c.require('_class_name', c.str('_class_name', 'ControlNetModel') === 'ControlNetModel', 'expected ControlNetModel');
  const enc = parseEncoderFields(c);
  c.require('global_pool_conditions', !c.bool('global_pool_conditions', false), 'not implemented (pooled ControlNets such as shuffle)');
  c.require('time_cond_proj_dim', !c.has('time_cond_proj_dim'), 'a ControlNet takes no guidance embedding');
  const order = c.str('controlnet_conditioning_channel_order', 'rgb');
  c.require('controlnet_conditioning_channel_order', order === 'rgb' || order === 'bgr', 'rgb or bgr');
  const emb = c.has('conditioning_embedding_out_channels') ? c.intList('conditioning_embedding_out_channels', (c.cfg.conditioning_embedding_out_channels as unknown[]).length) : [16, 32, 96, 256];
  c.require('conditioning_embedding_out_channels', emb.length >= 1 && emb.every((x) => x > 0), 'a non-empty list of widths');
  return { ...enc, conditioningChannels: c.int('conditioning_channels', 3), conditioningEmbeddingOutChannels: emb, channelOrder: order as 'rgb' | 'bgr' };
}
