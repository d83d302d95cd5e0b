// kohya sd-scripts style (LCM-LoRA, most community LoRAs): lora_unet_* / lora_te_* / lora_te1_* /
// lora_te2_* + `.lora_down.weight`, `.lora_up.weight`, `.alpha`. Module names are the model's module
// paths with '.' -> '_' (resolved against the model's own modules), or, for SDXL files from kohya's
// SDXL trainer, the original (sgm) UNet block names, mapped as diffusers does.
import { type OriginalBlockKind, RESNET_PARTS, originalBlock } from '../../single_file/unet';
import { type ConvertResult, type LoraComponent, type LoraFormat, type LoraModule, type LoraTarget, skipKeys } from '../types';

const PREFIXES: [string, LoraComponent][] = [
  ['lora_unet_', 'unet'],
  ['lora_te1_', 'text_encoder'],
  ['lora_te2_', 'text_encoder_2'],
  ['lora_te_', 'text_encoder'],
];

const flat = (m: string) => m.replace(/\./g, '_');

/**
 * input_blocks_N_M_rest / middle_block_M_rest / output_blocks_N_M_rest -> the flattened diffusers
 * name, by the single-file loader's mapping of the original UNet (lib/single_file/unet.ts).
 */
export function sgmToDiffusers(name: string, L: number): string | undefined {
  const m = /^(?:(input|output)_blocks_(\d+)|middle_block)_(\d+)_(.+)$/.exec(name);
  if (!m) return undefined;
  const kind: OriginalBlockKind = m[1] === 'input' ? 'input' : m[1] === 'output' ? 'output' : 'middle';
  let rest = m[4];
  const block = originalBlock(kind, Number(m[2] ?? 0), Number(m[3]), L, rest);
  if (!block) return undefined;
  if (block.tail) return flat(block.module);
  if (block.resnet) {
    const part = Object.keys(RESNET_PARTS).find((k) => rest === flat(k));
    if (part) rest = RESNET_PARTS[part];
  }
  return `${flat(block.module)}_${rest}`;
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
