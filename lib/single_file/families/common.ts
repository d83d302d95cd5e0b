// What every family shares: the keys no inference needs, and assembling a plan.
import type { ComponentName, ComponentPlan, FamilyPlan, HeaderIndex } from '../types';

/** Training-time buffers and copies real checkpoints carry (README-single-file.md, "Differences"). */
const IGNORED = [
  /^model_ema\./,
  /^(alphas_cumprod|alphas_cumprod_prev|betas|logvar|lvlb_weights|log_one_minus_alphas_cumprod)$/,
  /^(sqrt_alphas_cumprod|sqrt_one_minus_alphas_cumprod|sqrt_recip_alphas_cumprod|sqrt_recipm1_alphas_cumprod)$/,
  /^posterior_/,
  /^denoiser\.(sigmas|log_sigmas)$/,
  /\.logit_scale$/,
  /^v_pred$/,
];

export function assemble(h: HeaderIndex, components: Partial<Record<ComponentName, ComponentPlan>>, alsoIgnored: string[] = []): FamilyPlan {
  const used = new Set<string>();
  for (const c of Object.values(components)) for (const t of (c as ComponentPlan).tensors.values()) used.add(t.key);
  const extra = new Set(alsoIgnored);
  const unmatched: string[] = [];
  const ignored: string[] = [];
  for (const k of h.keys()) {
    if (used.has(k)) continue;
    if (extra.has(k) || IGNORED.some((r) => r.test(k))) ignored.push(k);
    else unmatched.push(k);
  }
  return { components, unmatched, ignored };
}

export function hasKeyWithPrefix(h: HeaderIndex, prefix: string): boolean {
  for (const k of h.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

/** The training schedule of every SD family, in a scheduler we run (the repos ship PNDM / Euler). */
export function eulerConfig(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    _class_name: 'EulerDiscreteScheduler',
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    num_train_timesteps: 1000,
    steps_offset: 1,
    timestep_spacing: 'leading',
    prediction_type: 'epsilon',
    ...fields,
  };
}

export const CLIP_L = { hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, model_type: 'clip_text_model', eos_token_id: 2 };
export const OPEN_CLIP = { hidden_act: 'gelu', layer_norm_eps: 1e-5, model_type: 'clip_text_model', eos_token_id: 2 };
export const SD_VAE = { _class_name: 'AutoencoderKL', act_fn: 'silu', norm_num_groups: 32, scaling_factor: 0.18215 };
export const SD_UNET = { _class_name: 'UNet2DConditionModel', act_fn: 'silu', norm_num_groups: 32, norm_eps: 1e-5, flip_sin_to_cos: true, freq_shift: 0, downsample_padding: 1 };
