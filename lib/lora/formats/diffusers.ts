// diffusers / PEFT styles: `unet.` / `text_encoder.` / `text_encoder_2.` prefixes (none = unet), with
//   <module>.lora.down.weight / .lora.up.weight          (diffusers attention projections)
//   <module>.lora_A.weight / .lora_B.weight              (PEFT)
//   <module>.lora_linear_layer.down.weight / .up.weight  (diffusers text encoders)
//   <attn>.processor.to_q_lora.down.weight ...           (the pre-PEFT attention-processor format)
// and an optional <module>.alpha (network alphas).
import { type ConvertResult, type LoraComponent, type LoraFormat, type LoraModule, type LoraTarget, skipKeys } from '../types';

const COMPONENT_PREFIXES: [string, LoraComponent][] = [
  ['text_encoder_2.', 'text_encoder_2'],
  ['text_encoder.', 'text_encoder'],
  ['unet.', 'unet'],
];

const PAIRS: [string, string][] = [
  ['.lora.down.weight', '.lora.up.weight'],
  ['.lora_A.weight', '.lora_B.weight'],
  ['.lora_linear_layer.down.weight', '.lora_linear_layer.up.weight'],
];

/** the processor format's names -> the module path */
function fromProcessor(path: string): string | undefined {
  const m = /^(.*)\.processor\.(to_q|to_k|to_v|to_out)_lora$/.exec(path);
  if (!m) return undefined;
  return `${m[1]}.${m[2] === 'to_out' ? 'to_out.0' : m[2]}`;
}

export const diffusersFormat: LoraFormat = {
  name: 'diffusers',
  detect: (keys) => keys.some((k) => PAIRS.some(([d]) => k.endsWith(d)) || /\.processor\.\w+_lora\.down\.weight$/.test(k)),
  convert(keys, alpha, target: LoraTarget): ConvertResult {
    const result: ConvertResult = { modules: [], skipped: [] };
    const keySet = new Set(keys);
    const used = new Set<string>();
    for (const down of keys) {
      let pair: [string, string] | undefined;
      let processor = false;
      if (/\.processor\.\w+_lora\.down\.weight$/.test(down)) {
        pair = ['.down.weight', '.up.weight'];
        processor = true;
      } else {
        pair = PAIRS.find(([d]) => down.endsWith(d));
      }
      if (!pair) continue;
      const base = down.slice(0, -pair[0].length);
      const up = `${base}${pair[1]}`;
      const alphaKey = `${base}.alpha`;
      const own = [down, up, alphaKey].filter((k) => keySet.has(k));
      for (const k of own) used.add(k);
      const skip = (reason: string) => skipKeys(result, own, reason);
      if (!keySet.has(up)) {
        skip(`no matching ${pair[1]}`);
        continue;
      }
      const pref = COMPONENT_PREFIXES.find(([p]) => base.startsWith(p));
      const component: LoraComponent = pref ? pref[1] : 'unet';
      let module = pref ? base.slice(pref[0].length) : base;
      if (processor) {
        const m = fromProcessor(module);
        if (!m) {
          skip('unknown attention-processor LoRA name');
          continue;
        }
        module = m;
      }
      const modules = target.modules(component);
      if (!modules) {
        skip(`the model has no ${component}`);
        continue;
      }
      if (!modules.has(module)) {
        skip(`no module '${module}' in the ${component}`);
        continue;
      }
      const m: LoraModule = { component, module, down, up, alpha: alpha(alphaKey), source: base };
      result.modules.push(m);
    }
    for (const k of keys) if (!used.has(k)) result.skipped.push({ key: k, reason: 'unrecognised key' });
    return result;
  },
};
