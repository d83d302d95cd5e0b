// AutoencoderKL and AutoencoderTiny config.json.
import * as path from 'path';
import { type Act, actFromName } from '../../graph';
import { ConfigReader, type Json, readJsonFile } from '../config';

export interface AutoencoderKLConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  groups: number;
  act: Act;
  scalingFactor: number;
  shiftFactor: number | undefined;
  /** diffusers decodes this VAE in float32 even in half-precision pipelines (SDXL's original VAE) */
  forceUpcast: boolean;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAttention: boolean;
}

export function readAutoencoderKLConfig(dir: string): AutoencoderKLConfig {
  const file = path.join(dir, 'config.json');
  return parseAutoencoderKLConfig(readJsonFile(file), file);
}

/** The same from a config object (`label` names it in errors: a file, or where it was derived from). */
export function parseAutoencoderKLConfig(json: Json, label: string): AutoencoderKLConfig {
  const c = new ConfigReader(json, label);
  c.require('_class_name', c.str('_class_name', 'AutoencoderKL') === 'AutoencoderKL', 'expected AutoencoderKL');
  const blockOut = c.intList('block_out_channels', (c.cfg.block_out_channels as unknown[] | undefined)?.length ?? 1, [64]);
  const n = blockOut.length;
  const down = c.strList('down_block_types', Array(n).fill('DownEncoderBlock2D'));
  const up = c.strList('up_block_types', Array(n).fill('UpDecoderBlock2D'));
  c.require('down_block_types', down.length === n && down.every((t) => t === 'DownEncoderBlock2D'), `${n} DownEncoderBlock2D`);
  c.require('up_block_types', up.length === n && up.every((t) => t === 'UpDecoderBlock2D'), `${n} UpDecoderBlock2D`);
  const act = actFromName(c.str('act_fn', 'silu'));
  c.require('act_fn', act !== undefined, 'supported: silu, gelu, relu');
  c.require('latents_mean', !c.has('latents_mean'), 'per-channel latent statistics are not implemented');
  c.require('latents_std', !c.has('latents_std'), 'per-channel latent statistics are not implemented');
  return {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    latentChannels: c.int('latent_channels', 4),
    blockOutChannels: blockOut,
    layersPerBlock: c.int('layers_per_block', 1),
    groups: c.int('norm_num_groups', 32),
    act: act as Act,
    scalingFactor: c.num('scaling_factor', 0.18215),
    shiftFactor: c.has('shift_factor') ? c.num('shift_factor') : undefined,
    forceUpcast: c.bool('force_upcast', true),
    useQuantConv: c.bool('use_quant_conv', true),
    usePostQuantConv: c.bool('use_post_quant_conv', true),
    midBlockAttention: c.bool('mid_block_add_attention', true),
  };
}

export interface AutoencoderTinyConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  encoderChannels: number[];
  decoderChannels: number[];
  encoderBlocks: number[];
  decoderBlocks: number[];
  act: Act;
  upsamplingFactor: number;
  scalingFactor: number;
}

export function readAutoencoderTinyConfig(dir: string): AutoencoderTinyConfig {
  const file = path.join(dir, 'config.json');
  const c = new ConfigReader(readJsonFile(file), file);
  c.require('_class_name', c.str('_class_name', 'AutoencoderTiny') === 'AutoencoderTiny', 'expected AutoencoderTiny');
  const enc = c.intList('encoder_block_out_channels', 4, 64);
  const dec = c.intList('decoder_block_out_channels', 4, 64);
  const act = actFromName(c.str('act_fn', 'relu'));
  c.require('act_fn', act !== undefined, 'supported: relu, silu, gelu');
  c.require('upsample_fn', c.str('upsample_fn', 'nearest') === 'nearest', 'only nearest');
  return {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    latentChannels: c.int('latent_channels', 4),
    encoderChannels: enc,
    decoderChannels: dec,
    encoderBlocks: c.intList('num_encoder_blocks', enc.length, [1, 3, 3, 3]),
    decoderBlocks: c.intList('num_decoder_blocks', dec.length, [3, 3, 3, 1]),
    act: act as Act,
    upsamplingFactor: c.int('upsampling_scaling_factor', 2),
    scalingFactor: c.num('scaling_factor', 1),
  };
}
