// Single-file checkpoints (the original CompVis / Stability key layout): what a family module
// derives from the header, and how a diffusers-named tensor is found in the file.
import type { Json } from '../models/config';
import type { TensorMeta } from '../safetensors';

/** The file's tensors by name: dtype and shape only (the header). */
export type HeaderIndex = ReadonlyMap<string, TensorMeta>;

/** Where a diffusers-named tensor lives in the file. */
export interface Target {
  /** the original key */
  key: string;
  /** rows [begin, end) of the first dimension (OpenCLIP's packed q / k / v) */
  rows?: [number, number];
  /** another shape of the same bytes (VAE attention 1x1 convs as linears) */
  shape?: number[];
  /** a 2-D transpose (SDXL's text_projection); the only conversion that copies */
  transpose?: boolean;
}

export type ComponentName = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';

/** One model component as read from the file. */
export interface ComponentPlan {
  /** diffusers / transformers config fields derived from shapes (the rest comes from defaults or a config folder) */
  derived: Json;
  /** diffusers name -> where it is */
  tensors: Map<string, Target>;
}

/** Per-family defaults for what the weights cannot tell (docs/MODELS.md, "Single-file checkpoints"). */
export interface FamilyDefaults {
  /** model_index.json's pipeline class */
  pipelineClass: string;
  /** the diffusers repo whose tokenizer folders (and configs) a real checkpoint of this family uses */
  configRepo: string;
  /** config.json per component, without the derived fields */
  configs: Partial<Record<ComponentName, Json>>;
  /** attention heads are width / headDim where the config does not say (SD2, SDXL, OpenCLIP, CLIP-L) */
  headDim: { unet?: number; text_encoder: number; text_encoder_2?: number };
  /** SD1: a fixed head count per level */
  unetHeads?: number;
  schedulerConfig: Json;
  forceZerosForEmptyPrompt?: boolean;
}

export interface FamilyPlan {
  components: Partial<Record<ComponentName, ComponentPlan>>;
  /** keys read by no component and not known to be unneeded */
  unmatched: string[];
  /** keys known to be unneeded for inference (EMA copies, schedule buffers, SD2's 24th text layer, ...) */
  ignored: string[];
}

export interface SingleFileFamily {
  /** 'sd1' | 'sd2' | 'sd2-sgm' | 'sdxl' */
  readonly name: string;
  readonly description: string;
  /** from the key names and shapes alone */
  detect(header: HeaderIndex): boolean;
  plan(header: HeaderIndex): FamilyPlan;
  readonly defaults: FamilyDefaults;
}
