// The UNet of the original layout (`model.diffusion_model.` in CompVis ldm and Stability sgm
// files): structure from the header, and the key table to diffusers' UNet2DConditionModel names
// (README-single-file.md, "Key layout"). L resnets per level; level i of n.
import { ConfigError } from '../errors';
import type { Json } from '../models/config';
import type { ComponentPlan, HeaderIndex, Target } from './types';
import { hasPrefix, indices, shapeOf, under } from './util';

/** A resnet's inner module names, original -> diffusers. */
export const RESNET_PARTS: Record<string, string> = {
  'in_layers.0': 'norm1',
  'in_layers.2': 'conv1',
  'emb_layers.1': 'time_emb_proj',
  'out_layers.0': 'norm2',
  'out_layers.3': 'conv2',
  skip_connection: 'conv_shortcut',
};

export type OriginalBlockKind = 'input' | 'middle' | 'output';

/**
 * The one mapping of the original UNet's block numbering to diffusers' modules, with L resnets
 * per level: `input_blocks.N.S`, `middle_block.S` (N unused), `output_blocks.N.S`, and the module
 * name after them when it is a sampler's ('op' of a downsampler, 'conv' of an upsampler). Returns
 * the diffusers module (dotted), whether its inner names are a resnet's (RESNET_PARTS), and
 * whether `tail` was part of it; undefined for a block diffusers has no module for. The single-file
 * loader, the ControlNet's and kohya's SDXL LoRA names all go through it.
 */
export function originalBlock(kind: OriginalBlockKind, n: number, sub: number, L: number, tail = ''): { module: string; resnet: boolean; tail: boolean } | undefined {
  if (kind === 'middle') {
    if (sub === 0 || sub === 2) return { module: `mid_block.resnets.${sub / 2}`, resnet: true, tail: false };
    return sub === 1 ? { module: 'mid_block.attentions.0', resnet: false, tail: false } : undefined;
  }
  if (kind === 'input') {
    if (n === 0) return sub === 0 ? { module: 'conv_in', resnet: false, tail: false } : undefined;
    const level = Math.floor((n - 1) / (L + 1));
    const idx = (n - 1) % (L + 1);
    if (idx === L) return sub === 0 && tail === 'op' ? { module: `down_blocks.${level}.downsamplers.0.conv`, resnet: false, tail: true } : undefined;
    if (sub > 1) return undefined;
    return { module: `down_blocks.${level}.${sub === 0 ? 'resnets' : 'attentions'}.${idx}`, resnet: sub === 0, tail: false };
  }
  const level = Math.floor(n / (L + 1));
  const idx = n % (L + 1);
  // an up level's last block ends in its upsampler: output_blocks.N.1.conv (no attention) or .2.conv
  if ((sub === 1 || sub === 2) && tail === 'conv') return idx === L ? { module: `up_blocks.${level}.upsamplers.0.conv`, resnet: false, tail: true } : undefined;
  if (sub > 1) return undefined;
  return { module: `up_blocks.${level}.${sub === 0 ? 'resnets' : 'attentions'}.${idx}`, resnet: sub === 0, tail: false };
}

export interface UNetStructure {
  levels: number;
  layersPerBlock: number;
  channels: number[];
  /** down levels with attention */
  attention: boolean[];
  /** transformer blocks per down level (1 where a level has no attention, as diffusers' configs write) */
  depth: number[];
  /** transformer blocks per up level (from the lowest resolution) */
  upDepth: number[];
  midDepth: number;
  /** SDXL: label_emb input width */
  admInChannels?: number;
}

function depthOf(h: HeaderIndex, prefix: string): number {
  return indices(h.keys(), `${prefix}transformer_blocks.`).length;
}

/** The structure of the input / middle blocks (and, with `decoder`, the output blocks). */
export function unetStructure(h: HeaderIndex, p: string, decoder = true): UNetStructure {
  const blocks = indices(h.keys(), `${p}input_blocks.`);
  const gap = blocks.findIndex((b, i) => b !== i);
  if (blocks.length === 0 || gap >= 0) throw new ConfigError(`single-file checkpoint: the UNet's input_blocks are not numbered 0..${blocks.length - 1}${gap >= 0 ? ` (input_blocks.${gap} is missing)` : ''}`);
  const ops = blocks.filter((b) => h.has(`${p}input_blocks.${b}.0.op.weight`));
  const levels = ops.length + 1;
  const L = ops.length ? ops[0] - 1 : blocks.length - 1;
  if (L < 1 || blocks.length !== levels * (L + 1) || ops.some((b, i) => b !== (L + 1) * (i + 1))) {
    throw new ConfigError(`single-file checkpoint: the UNet's input_blocks (${blocks.length}, downsamplers at ${ops.join(', ')}) do not form levels of equal resnet counts`);
  }
  const channels: number[] = [];
  const attention: boolean[] = [];
  const depth: number[] = [];
  const midDepth = depthOf(h, `${p}middle_block.1.`);
  for (let i = 0; i < levels; i++) {
    const first = `${p}input_blocks.${(L + 1) * i + 1}`;
    channels.push(shapeOf(h, `${first}.0.out_layers.3.weight`, `level ${i} channels`)[0]);
    const attn = hasPrefix(h, `${first}.1.`);
    attention.push(attn);
    // diffusers' mid block takes the last level's depth; other levels without attention ignore theirs
    depth.push(attn ? depthOf(h, `${first}.1.`) : i === levels - 1 ? midDepth : 1);
  }
  const upDepth: number[] = [];
  for (let i = 0; decoder && i < levels; i++) {
    const first = `${p}output_blocks.${(L + 1) * i}`;
    const attn = hasPrefix(h, `${first}.1.transformer_blocks.`);
    if (attn !== attention[levels - 1 - i]) {
      throw new ConfigError(`single-file checkpoint: up level ${i} ${attn ? 'has' : 'lacks'} attention but down level ${levels - 1 - i} does not match`);
    }
    upDepth.push(attn ? depthOf(h, `${first}.1.`) : depth[levels - 1 - i]);
  }
  const label = h.get(`${p}label_emb.0.0.weight`);
  return { levels, layersPerBlock: L, channels, attention, depth, upDepth, midDepth, admInChannels: label ? label.shape[1] : undefined };
}

/**
 * Diffusers module prefix -> original module prefix (with the resnet-internal renames): the
 * encoder half (which a ControlNet shares), and with `decoder` the up blocks and the output.
 */
export function moduleTable(s: UNetStructure, decoder = true): [string, string, boolean][] {
  const L = s.layersPerBlock;
  const t: [string, string, boolean][] = [
    ['time_embedding.linear_1', 'time_embed.0', false],
    ['time_embedding.linear_2', 'time_embed.2', false],
    ['add_embedding.linear_1', 'label_emb.0.0', false],
    ['add_embedding.linear_2', 'label_emb.0.2', false],
  ];
  if (decoder) t.push(['conv_norm_out', 'out.0', false], ['conv_out', 'out.2', false]);
  // every block the structure has, named by originalBlock
  const add = (kind: OriginalBlockKind, n: number, sub: number, tail = '') => {
    const b = originalBlock(kind, n, sub, L, tail) as { module: string; resnet: boolean };
    const at = kind === 'middle' ? `middle_block.${sub}` : `${kind}_blocks.${n}.${sub}`;
    t.push([b.module, tail ? `${at}.${tail}` : at, b.resnet]);
  };
  add('input', 0, 0);
  for (const sub of [0, 1, 2]) add('middle', 0, sub);
  for (let i = 0; i < s.levels; i++) {
    for (let j = 0; j < L; j++) {
      add('input', (L + 1) * i + j + 1, 0);
      if (s.attention[i]) add('input', (L + 1) * i + j + 1, 1);
    }
    if (i < s.levels - 1) add('input', (L + 1) * (i + 1), 0, 'op');
    if (!decoder) continue;
    const upAttn = s.attention[s.levels - 1 - i];
    for (let j = 0; j <= L; j++) {
      add('output', (L + 1) * i + j, 0);
      if (upAttn) add('output', (L + 1) * i + j, 1);
    }
    if (i < s.levels - 1) add('output', (L + 1) * i + L, upAttn ? 2 : 1, 'conv');
  }
  return t;
}

/** diffusers name -> original key, for every key under `p` a module of `table` names. */
export function mapByTable(h: HeaderIndex, p: string, table: [string, string, boolean][]): Map<string, Target> {
  const tensors = new Map<string, Target>();
  const byOriginal = new Map<string, [string, boolean]>();
  for (const [d, o, resnet] of table) byOriginal.set(o, [d, resnet]);
  for (const rest of under(h, p)) {
    // the longest original module prefix that names this key
    const parts = rest.split('.');
    for (let n = parts.length - 1; n >= 1; n--) {
      const m = byOriginal.get(parts.slice(0, n).join('.'));
      if (!m) continue;
      let inner = parts.slice(n).join('.');
      if (m[1]) {
        const r = Object.keys(RESNET_PARTS).find((k) => inner.startsWith(`${k}.`));
        if (!r) break;
        inner = `${RESNET_PARTS[r]}${inner.slice(r.length)}`;
      }
      tensors.set(`${m[0]}.${inner}`, { key: `${p}${rest}` });
      break;
    }
  }
  return tensors;
}

/** The encoder half's config fields from the shapes (shared by the UNet and the ControlNet). */
export function encoderDerived(h: HeaderIndex, p: string, s: UNetStructure, options: { pooledWidth?: number } = {}): Json {
  const convIn = shapeOf(h, `${p}input_blocks.0.0.weight`, 'conv_in');
  const timeEmbed = shapeOf(h, `${p}time_embed.0.weight`, 'time embedding');
  if (timeEmbed[0] !== 4 * convIn[0]) throw new ConfigError(`single-file checkpoint: time embedding width ${timeEmbed[0]} is not 4 x ${convIn[0]} channels`);
  const attnKey = [...h.keys()].find((k) => k.startsWith(p) && k.endsWith('.attn2.to_k.weight'));
  if (!attnKey) throw new ConfigError('single-file checkpoint: the UNet has no cross-attention (attn2.to_k)');
  const projIn = [...h.keys()].find((k) => k.startsWith(p) && k.endsWith('.proj_in.weight')) as string;
  const derived: Json = {
    in_channels: convIn[1],
    conv_in_kernel: convIn[2],
    block_out_channels: s.channels,
    layers_per_block: s.layersPerBlock,
    down_block_types: s.attention.map((a) => (a ? 'CrossAttnDownBlock2D' : 'DownBlock2D')),
    transformer_layers_per_block: s.depth,
    cross_attention_dim: (h.get(attnKey) as { shape: number[] }).shape[1],
    use_linear_projection: (h.get(projIn) as { shape: number[] }).shape.length === 2,
  };
  if (s.midDepth !== s.depth[s.levels - 1]) {
    throw new ConfigError(`single-file checkpoint: mid-block transformer depth ${s.midDepth} differs from the last level's ${s.depth[s.levels - 1]}`);
  }
  if (s.admInChannels !== undefined) {
    derived.addition_embed_type = 'text_time';
    derived.projection_class_embeddings_input_dim = s.admInChannels;
    if (options.pooledWidth !== undefined) {
      const timeIds = s.admInChannels - options.pooledWidth;
      if (timeIds <= 0 || timeIds % 6) throw new ConfigError(`single-file checkpoint: label_emb width ${s.admInChannels} minus pooled width ${options.pooledWidth} is not 6 time ids`);
      derived.addition_time_embed_dim = timeIds / 6;
    }
  }
  return derived;
}

export function planUNet(h: HeaderIndex, p: string, options: { pooledWidth?: number } = {}): ComponentPlan & { structure: UNetStructure } {
  const s = unetStructure(h, p);
  const tensors = mapByTable(h, p, moduleTable(s));
  const enc = encoderDerived(h, p, s, options);
  const convOut = shapeOf(h, `${p}out.2.weight`, 'conv_out');
  const derived: Json = {
    ...enc,
    out_channels: convOut[0],
    conv_out_kernel: convOut[2],
    up_block_types: [...s.attention].reverse().map((a) => (a ? 'CrossAttnUpBlock2D' : 'UpBlock2D')),
  };
  const reversed = [...s.depth].reverse();
  if (s.upDepth.some((d, i) => d !== reversed[i])) derived.reverse_transformer_layers_per_block = s.upDepth;
  return { derived, tensors, structure: s };
}
