// LoRA files in every key style map to one canonical form: (component, module path in the
// diffusers / transformers tree, down and up tensors, alpha).

export type LoraComponent = 'unet' | 'text_encoder' | 'text_encoder_2';
export const LORA_COMPONENTS: readonly LoraComponent[] = ['unet', 'text_encoder', 'text_encoder_2'];

export interface LoraModule {
  component: LoraComponent;
  /** module path in the model, e.g. down_blocks.0.attentions.0.proj_in (the weight is `${module}.weight`) */
  module: string;
  /** tensor names in the LoRA file */
  down: string;
  up: string;
  /** the file's alpha for this module (alpha / rank scales it); undefined = rank (factor 1) */
  alpha?: number;
  /** the file's own name for the module, for reports */
  source: string;
}

export interface SkippedKey {
  key: string;
  reason: string;
}

export interface ConvertResult {
  modules: LoraModule[];
  skipped: SkippedKey[];
}

/** Reports every tensor of a module that cannot be applied (down, up, alpha), with one reason. */
export function skipKeys(result: ConvertResult, keys: readonly string[], reason: string): void {
  for (const key of keys) result.skipped.push({ key, reason });
}

/** What a converter may ask about the model the LoRA is for. */
export interface LoraTarget {
  /** the component's module paths (weight keys without `.weight`), or undefined if absent */
  modules(component: LoraComponent): ReadonlySet<string> | undefined;
  /** UNet resnets per level (for kohya's original SDXL block names) */
  unetLayersPerBlock?: number;
}

export interface LoraFormat {
  readonly name: string;
  /** whether this converter owns a file with these tensor names */
  detect(keys: readonly string[]): boolean;
  convert(keys: readonly string[], alpha: (key: string) => number | undefined, target: LoraTarget): ConvertResult;
}
