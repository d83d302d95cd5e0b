// UNet2DConditionModel config.json: every field the SD1.x / SD2.x / SDXL / LCM families use is
// honoured; anything else that would change the math is rejected with a clear error.
import * as path from 'path';
import { type Act, actFromName } from '../../graph';
import { ConfigReader, type Json, readJsonFile } from '../config';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

/**
 * The fields of the down path (time embedding, conv_in, down blocks, mid block), which
 * UNet2DConditionModel and ControlNetModel share (a ControlNet is a copy of a UNet's encoder half).
 */
export interface UNetEncoderConfig {
  inChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  layersPerBlock: number[];
  /** heads per down block (diffusers' legacy attention_head_dim = number of heads) */
  heads: number[];
  transformerLayers: number[];
  crossAttentionDim: number;
  groups: number;
  eps: number;
  act: Act;
  flipSinToCos: boolean;
  freqShift: number;
  useLinearProjection: boolean;
  downsamplePadding: number;
  convInKernel: number;
  centerInputSample: boolean;
  midBlockScale: number;
  timeCondProjDim: number | undefined;
  /** SDXL: addition_embed_type "text_time" */
  textTime: { timeEmbedDim: number; projectionInputDim: number } | undefined;
}

export interface UNetConfig extends UNetEncoderConfig {
  outChannels: number;
  upBlockTypes: UpBlockType[];
  /** for the up blocks (reverse_transformer_layers_per_block, else reversed) */
  upTransformerLayers: number[];
  convOutKernel: number;
  sampleSize: number;
}

const DOWN = ['CrossAttnDownBlock2D', 'DownBlock2D'];
const UP = ['CrossAttnUpBlock2D', 'UpBlock2D'];

export function readUNetConfig(dir: string): UNetConfig {
  const file = path.join(dir, 'config.json');
  return parseUNetConfig(readJsonFile(file), file);
}

/** The same from a config object (`label` names it in errors: a file, or where it was derived from). */
export function parseUNetConfig(json: Json, label: string): UNetConfig {
  const c = new ConfigReader(json, label);
  const cls = c.str('_class_name', 'UNet2DConditionModel');
  c.require('_class_name', cls === 'UNet2DConditionModel', 'expected UNet2DConditionModel');
  const enc = parseEncoderFields(c);
  const n = enc.blockOutChannels.length;
  const up = c.strList('up_block_types');
  c.require('up_block_types', up.length === n && up.every((t) => UP.includes(t)), `${n} of ${UP.join(', ')}`);
  const upTransformerLayers = c.has('reverse_transformer_layers_per_block') ? c.intList('reverse_transformer_layers_per_block', n) : [...enc.transformerLayers].reverse();
  const convOut = c.int('conv_out_kernel', 3);
  c.require('conv_out_kernel', convOut % 2 === 1, 'must be odd');
  return {
    ...enc,
    outChannels: c.int('out_channels', 4),
    upBlockTypes: up as UpBlockType[],
    upTransformerLayers,
    convOutKernel: convOut,
    sampleSize: c.int('sample_size', 64),
  };
}

/** The encoder half's fields of a UNet2DConditionModel or ControlNetModel config (shared, validated once). */
export function parseEncoderFields(c: ConfigReader): UNetEncoderConfig {
  const blockOut = c.intList('block_out_channels', (c.cfg.block_out_channels as unknown[] | undefined)?.length ?? 4, [320, 640, 1280, 1280]);
  const n = blockOut.length;
  const down = c.strList('down_block_types');
  c.require('down_block_types', down.length === n && down.every((t) => DOWN.includes(t)), `${n} of ${DOWN.join(', ')}`);
  c.require('mid_block_type', c.str('mid_block_type', 'UNetMidBlock2DCrossAttn') === 'UNetMidBlock2DCrossAttn', 'only UNetMidBlock2DCrossAttn');
  c.require('num_attention_heads', !c.has('num_attention_heads'), 'diffusers reads the head count from attention_head_dim');
  const heads = c.intList('attention_head_dim', n, 8);
  const transformerLayers = c.intList('transformer_layers_per_block', n, 1);
  const act = actFromName(c.str('act_fn', 'silu'));
  c.require('act_fn', act !== undefined, 'supported: silu, gelu, relu');
  // fields whose other values would change the math and are not implemented
  c.require('class_embed_type', !c.has('class_embed_type'), 'class embeddings are not used by these families');
  c.require('encoder_hid_dim_type', !c.has('encoder_hid_dim_type'), 'not implemented');
  c.require('time_embedding_type', c.str('time_embedding_type', 'positional') === 'positional', 'only positional');
  c.require('resnet_time_scale_shift', c.str('resnet_time_scale_shift', 'default') === 'default', 'only default');
  c.require('dual_cross_attention', !c.bool('dual_cross_attention', false), 'not implemented');
  c.require('only_cross_attention', !(c.cfg.only_cross_attention === true || (Array.isArray(c.cfg.only_cross_attention) && c.cfg.only_cross_attention.includes(true))), 'not implemented');
  c.require('attention_type', c.str('attention_type', 'default') === 'default', 'only default');
  c.require('cross_attention_norm', !c.has('cross_attention_norm'), 'not implemented');
  c.require('time_embedding_act_fn', !c.has('time_embedding_act_fn'), 'not implemented');
  c.require('timestep_post_act', !c.has('timestep_post_act'), 'not implemented');
  c.require('time_embedding_dim', !c.has('time_embedding_dim'), 'not implemented');
  c.require('resnet_skip_time_act', !c.bool('resnet_skip_time_act', false), 'not implemented');
  c.require('resnet_out_scale_factor', c.num('resnet_out_scale_factor', 1) === 1, 'only 1.0');
  c.require('class_embeddings_concat', !c.bool('class_embeddings_concat', false), 'not implemented');
  c.require('mid_block_only_cross_attention', !c.bool('mid_block_only_cross_attention', false), 'not implemented');
  c.require('num_class_embeds', !c.has('num_class_embeds'), 'class embeddings are not used by these families');
  c.require('encoder_hid_dim', !c.has('encoder_hid_dim'), 'not implemented');
  const addType = c.has('addition_embed_type') ? c.str('addition_embed_type') : undefined;
  c.require('addition_embed_type', addType === undefined || addType === 'text_time', 'only text_time (SDXL)');
  const convIn = c.int('conv_in_kernel', 3);
  c.require('conv_in_kernel', convIn % 2 === 1, 'must be odd');
  const rawCross = c.cfg.cross_attention_dim;
  const crossList = Array.isArray(rawCross) ? c.intList('cross_attention_dim', rawCross.length) : [c.int('cross_attention_dim', 1280)];
  c.require('cross_attention_dim', crossList.every((d) => d === crossList[0]), 'one width for every block');
  return {
    inChannels: c.int('in_channels', 4),
    blockOutChannels: blockOut,
    downBlockTypes: down as DownBlockType[],
    layersPerBlock: c.intList('layers_per_block', n, 2),
    heads,
    transformerLayers,
    crossAttentionDim: crossList[0],
    groups: c.int('norm_num_groups', 32),
    eps: c.num('norm_eps', 1e-5),
    act: act as Act,
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.num('freq_shift', 0),
    useLinearProjection: c.bool('use_linear_projection', false),
    downsamplePadding: c.int('downsample_padding', 1),
    convInKernel: convIn,
    centerInputSample: c.bool('center_input_sample', false),
    midBlockScale: c.num('mid_block_scale_factor', 1),
    timeCondProjDim: c.has('time_cond_proj_dim') ? c.int('time_cond_proj_dim') : undefined,
    textTime:
      addType === 'text_time'
        ? { timeEmbedDim: c.int('addition_time_embed_dim'), projectionInputDim: c.int('projection_class_embeddings_input_dim') }
        : undefined,
  };
}
