// ControlNets in the original single-file layout (lllyasviel's ControlNet: `control_model.*` keys,
// or the same keys without the prefix, as the control_*.safetensors files on the hub have them).
// The encoder half is named as the UNet's input / middle blocks (lib/single_file/unet.ts, the same
// table); the rest follows diffusers' own conversion (diffusers v0.27.2,
// src/diffusers/pipelines/stable_diffusion/convert_from_ckpt.py, convert_ldm_unet_checkpoint with
// controlnet=True): input_hint_block.{0, 2, 4, ...} (convolutions between SiLUs) are
// controlnet_cond_embedding.conv_in, .blocks.0.., .conv_out; zero_convs.{i}.0 is
// controlnet_down_blocks.{i}; middle_block_out.0 is controlnet_mid_block.
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, FileNotFoundError } from '../errors';
import { type Json, readJsonFile } from '../models/config';
import type { ModelTarget } from '../models/weights';
import { ControlNetModel } from '../models/controlnet/controlnet';
import { SafetensorsFile, type TensorMeta } from '../safetensors';
import { RenamedSource } from './source';
import type { ComponentPlan, HeaderIndex, Target } from './types';
import { encoderDerived, mapByTable, moduleTable, unetStructure } from './unet';
import { indices, shapeOf } from './util';

/** The key prefix of an original-layout ControlNet, or undefined when the header is not one. */
export function controlNetPrefix(h: HeaderIndex): string | undefined {
  for (const p of ['control_model.', '']) if (h.has(`${p}input_hint_block.0.weight`) && h.has(`${p}middle_block_out.0.weight`)) return p;
  return undefined;
}

/** diffusers names -> file keys, and the config fields the shapes give. */
export function planControlNet(h: HeaderIndex, p: string): ComponentPlan {
  const s = unetStructure(h, p, false);
  const table = moduleTable(s, false);
  // the conditioning embedding: the hint block's convolutions in order (SiLUs between them hold no weights)
  const hint = indices(h.keys(), `${p}input_hint_block.`).filter((i) => h.has(`${p}input_hint_block.${i}.weight`));
  if (hint.length < 2) throw new ConfigError(`single-file ControlNet: input_hint_block has ${hint.length} convolutions`);
  table.push(['controlnet_cond_embedding.conv_in', `input_hint_block.${hint[0]}`, false]);
  hint.slice(1, -1).forEach((i, k) => table.push([`controlnet_cond_embedding.blocks.${k}`, `input_hint_block.${i}`, false]));
  table.push(['controlnet_cond_embedding.conv_out', `input_hint_block.${hint[hint.length - 1]}`, false]);
  const zeros = indices(h.keys(), `${p}zero_convs.`);
  zeros.forEach((i) => table.push([`controlnet_down_blocks.${i}`, `zero_convs.${i}.0`, false]));
  table.push(['controlnet_mid_block', 'middle_block_out.0', false]);
  const tensors: Map<string, Target> = mapByTable(h, p, table);
  const derived = encoderDerived(h, p, s);
  const convs = hint.map((i) => shapeOf(h, `${p}input_hint_block.${i}.weight`, 'the hint block'));
  // widths: conv_in's, then every stride-2 conv's (the second of each pair)
  derived.conditioning_channels = convs[0][1];
  derived.conditioning_embedding_out_channels = [convs[0][0], ...convs.slice(1, -1).filter((_, k) => k % 2 === 1).map((c) => c[0])];
  return { derived, tensors };
}

function headerIndex(st: SafetensorsFile): HeaderIndex {
  const m = new Map<string, TensorMeta>();
  for (const n of st.names()) {
    const i = st.info(n);
    m.set(n, { dtype: i.dtype, shape: i.shape });
  }
  return m;
}

/** Attention heads where no config says: SD1.x ControlNets 8 per level, SD2.x / SDXL a head size of 64 (cldm_v15 / cldm_v21 / the SDXL UNet). */
function defaultHeads(derived: Json): number | number[] {
  const cross = derived.cross_attention_dim as number;
  if (cross === 768) return 8;
  const channels = derived.block_out_channels as number[];
  if ((cross === 1024 || cross === 2048) && channels.every((c) => c % 64 === 0)) return channels.map((c) => c / 64);
  throw new ConfigError(`single-file ControlNet: its attention heads are unknown (cross_attention_dim ${cross}); pass a diffusers ControlNet config (config: a folder or config.json)`);
}

/**
 * A ControlNet from an original-layout single file. `config`: a diffusers ControlNet folder or
 * its config.json, for what the weights cannot tell (heads; the family's usual values otherwise),
 * checked against what they do tell.
 */
export function openControlNetFile(file: string, options: { config?: string } & ModelTarget = {}): ControlNetModel {
  if (!fs.existsSync(file)) throw new FileNotFoundError(file, 'ControlNet file');
  const st = SafetensorsFile.open(file);
  let plan: ComponentPlan;
  try {
    const h = headerIndex(st);
    const p = controlNetPrefix(h);
    if (p === undefined) throw new ConfigError(`${file}: not a ControlNet in the original layout (no input_hint_block / middle_block_out keys); a diffusers ControlNet is a folder with config.json`);
    plan = planControlNet(h, p);
  } catch (e) {
    st.close();
    throw e;
  }
  let config: Json;
  if (options.config) {
    const cfgFile = fs.existsSync(options.config) && fs.statSync(options.config).isDirectory() ? path.join(options.config, 'config.json') : options.config;
    const base = readJsonFile(cfgFile);
    for (const [k, v] of Object.entries(plan.derived)) {
      const b = base[k];
      if (b === undefined || b === null) continue;
      const norm = Array.isArray(v) && typeof b === 'number' ? v.map(() => b) : b;
      if (JSON.stringify(norm) !== JSON.stringify(v)) {
        st.close();
        throw new ConfigError(`${cfgFile}: '${k}' is ${JSON.stringify(b)} but the ControlNet's weights say ${JSON.stringify(v)} (is this config for another model?)`);
      }
    }
    config = { ...base, ...plan.derived };
  } else {
    config = { _class_name: 'ControlNetModel', ...plan.derived, attention_head_dim: defaultHeads(plan.derived) };
  }
  if (config.addition_embed_type === 'text_time' && config.addition_time_embed_dim === undefined) config.addition_time_embed_dim = 256; // SDXL's
  const source = new RenamedSource(st, plan.tensors, `${file} (controlnet)`);
  try {
    return ControlNetModel.fromSource(config, source, path.basename(file), options);
  } catch (e) {
    source.close();
    throw e;
  }
}
