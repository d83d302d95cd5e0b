// What differs between the pipeline kinds, in one place: the standard SD / SDXL pipelines, the
// LCM pipelines (a UNet with the guidance embedding) and InstaFlow's rectified flow. The stages
// of a generation (lib/pipelines/pipeline.ts) ask these rules and branch nowhere else on the kind.
import type { UNet2DConditionModel } from '../models/unet/unet';
import type { Plan, SchedulerName } from '../schedulers';

/** How guidance and stepping work for this model. */
export type PipelineKind = 'standard' | 'lcm' | 'flow';

export interface KindRules {
  /** classifier-free guidance batches the UNet [negative; positive] */
  cfg(guidance: number, unet: UNet2DConditionModel): boolean;
  /** the scheduler this kind forces, if any */
  scheduler?: SchedulerName;
  /**
   * how img2img strength cuts the schedule: 'slice' (SD / SDXL img2img pipelines: the last
   * int(N * strength) steps) or 'scheduler' (LCMScheduler.set_timesteps(N, strength))
   */
  strengthMode: 'slice' | 'scheduler';
  /** the image is decoded from the last step's `denoised` (the LCM pipelines) */
  decodesDenoised(plan: Plan): boolean;
  /** the UNet's timestep tensor holds one value per row (the flow loop passes [B]) rather than a broadcast scalar (traces) */
  timestepPerRow: boolean;
}

// diffusers' StableDiffusionPipeline: CFG only when guidance > 1 and the UNet has no guidance embedding
const standardCfg = (g: number, unet: UNet2DConditionModel) => g > 1 && !unet.config.timeCondProjDim;

export const KIND_RULES: Readonly<Record<PipelineKind, KindRules>> = {
  standard: { cfg: standardCfg, strengthMode: 'slice', decodesDenoised: (plan) => plan.denoisedName === 'denoised', timestepPerRow: false },
  lcm: { cfg: () => false, strengthMode: 'scheduler', decodesDenoised: () => true, timestepPerRow: false },
  flow: { cfg: standardCfg, scheduler: 'flow', strengthMode: 'slice', decodesDenoised: () => false, timestepPerRow: true },
};
