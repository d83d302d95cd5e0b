// kohya sd-scripts style (LCM-LoRA, most community LoRAs): lora_unet_* / lora_te_* / lora_te1_* /
// lora_te2_* + `.lora_down.weight`, `.lora_up.weight`, `.alpha`. Module names are the model's module
// paths with '.' -> '_' (resolved against the model's own modules), or, for SDXL files from kohya's
// SDXL trainer, the original (sgm) UNet block names, mapped as diffusers does.
import { type ConvertResult, type LoraComponent, type LoraFormat, type LoraModule, type LoraTarget, skipKeys } from '../types';

const PREFIXES: [string, LoraComponent][] = [
  ['lora_unet_', 'unet'],
  ['lora_te1_', 'text_encoder'],
  ['lora_te2_', 'text_encoder_2'],
  ['lora_te_', 'text_encoder'],
];

const flat = (m: string) => m.replace(/\./g, '_');

/** sgm resnet-internal names -> diffusers */
const RESNET_PARTS: [string, string][] = [
  ['in_layers_2', 'conv1'],
  ['out_layers_3', 'conv2'],
  ['emb_layers_1', 'time_emb_proj'],
  ['skip_connection', 'conv_shortcut'],
];

/** input_blocks_N_M_rest / middle_block_M_rest / output_blocks_N_M_rest -> flattened diffusers name. */
export function sgmToDiffusers(name: string, L: number): string | undefined {
  let m = /^input_blocks_(\d+)_(\d+)_(.+)$/.exec(name);
  let prefix: string;
  let rest: string;
  if (m) {
    const n = Number(m[1]);
    const sub = Number(m[2]);
    rest = m[3];
    if (n === 0) return undefined;
    const level = Math.floor((n - 1) / (L + 1));
    const idx = (n - 1) % (L + 1);
    if (idx === L) {
      if (rest !== 'op') return undefined;
      return `down_blocks_${level}_downsamplers_0_conv`;
    }
    prefix = sub === 0 ? `down_blocks_${level}_resnets_${idx}` : `down_blocks_${level}_attentions_${idx}`;
  } else if ((m = /^middle_block_(\d+)_(.+)$/.exec(name))) {
    const sub = Number(m[1]);
    rest = m[2];
    prefix = sub === 0 ? 'mid_block_resnets_0' : sub === 1 ? 'mid_block_attentions_0' : 'mid_block_resnets_1';
  } else if ((m = /^output_blocks_(\d+)_(\d+)_(.+)$/.exec(name))) {
    const n = Number(m[1]);
    const sub = Number(m[2]);
    rest = m[3];
    const level = Math.floor(n / (L + 1));
    const idx = n % (L + 1);
    if (sub === 2 || (sub === 1 && rest === 'conv')) return rest === 'conv' ? `up_blocks_${level}_upsamplers_0_conv` : undefined;
    prefix = sub === 0 ? `up_blocks_${level}_resnets_${idx}` : `up_blocks_${level}_attentions_${idx}`;
  } else {
    return undefined;
  }
  for (const [from, to] of RESNET_PARTS) if (rest === from) rest = to;
  return `${prefix}_${rest}`;
}

export const kohyaFormat: LoraFormat = {
  name: 'kohya',
  detect: (keys) => keys.some((k) => PREFIXES.some(([p]) => k.startsWith(p))),
  convert(keys, alpha, target: LoraTarget): ConvertResult {
    const result: ConvertResult = { modules: [], skipped: [] };
    const indexes = new Map<LoraComponent, Map<string, string>>();
    const index = (c: LoraComponent) => {
      let idx = indexes.get(c);
      if (!idx) {
        idx = new Map();
        for (const m of target.modules(c) ?? []) idx.set(flat(m), m);
        indexes.set(c, idx);
      }
      return idx;
    };
    const downs = keys.filter((k) => k.endsWith('.lora_down.weight'));
    const known = new Set<string>();
    for (const down of downs) {
      const base = down.slice(0, -'.lora_down.weight'.length);
      const up = `${base}.lora_up.weight`;
      const own = [down, up, `${base}.alpha`].filter((k) => keys.includes(k));
      for (const k of own) known.add(k);
      const skip = (reason: string) => skipKeys(result, own, reason);
      if (!keys.includes(up)) {
        skip('no matching .lora_up.weight');
        continue;
      }
      const pref = PREFIXES.find(([p]) => base.startsWith(p));
      if (!pref) {
        skip('unknown kohya prefix (expected lora_unet_, lora_te_, lora_te1_, lora_te2_)');
        continue;
      }
      const [p, component] = pref;
      const name = base.slice(p.length);
      const idx = index(component);
      if (idx.size === 0) {
        skip(`the model has no ${component}`);
        continue;
      }
      let module = idx.get(name);
      if (!module && component === 'unet' && target.unetLayersPerBlock !== undefined) {
        const mapped = sgmToDiffusers(name, target.unetLayersPerBlock);
        if (mapped) module = idx.get(mapped);
      }
      if (!module) {
        skip(`no module '${name}' in the ${component}`);
        continue;
      }
      const m: LoraModule = { component, module, down, up, alpha: alpha(`${base}.alpha`), source: base };
      result.modules.push(m);
    }
    for (const k of keys) if (!known.has(k)) result.skipped.push({ key: k, reason: 'unrecognised key' });
    return result;
  },
};
