// What a scheduler produces: a plan of timesteps and, per step, the scalar coefficients that the
// fused native step applies (DESIGN: "schedulers are coefficients").
//
// Per element, with x the latents, e the model output (after classifier-free guidance, which the
// step op also fuses: e = cfgUncond * e_uncond + cfgCond * e_cond) and n fresh noise:
//   d    = a1 * x + b1 * e                    (the second output: x0, denoised, x_s ...)
//   prev = a2 * x + b2 * e + g2 * d + nu * n
export interface StepCoefficients {
  a1: number;
  b1: number;
  a2: number;
  b2: number;
  g2: number;
  nu: number;
}

export interface StepPlan {
  /** the timestep at the scheduler's own precision (the UNet receives float32(t)) */
  t: number;
  /** model input = inputScale * latents (Euler's scale_model_input; 1 elsewhere) */
  inputScale: number;
  coeffs: StepCoefficients;
  /** whether the reference draws randn(latents shape) at this step (even when nu is 0) */
  drawNoise: boolean;
  /** the scalars the reference computed, for checks and debugging (sigma, alpha_prod_t, ...) */
  scalars: Record<string, number>;
}

export interface Plan {
  scheduler: string;
  /** timesteps that run */
  timesteps: number[];
  /** the scheduler's whole list before an img2img slice */
  timestepsFull: number[];
  /** how the reference holds its timesteps (the UNet always receives them as float32) */
  timestepDtype: 'float32' | 'float64' | 'int64';
  initNoiseSigma: number;
  steps: StepPlan[];
  /** img2img: latents = addNoise.sample * image_latents + addNoise.noise * noise */
  addNoise?: { sample: number; noise: number };
  /** what the step's second output is called in diffusers */
  denoisedName?: 'pred_original_sample' | 'denoised' | 'pred_noised_sample';
}

export interface PlanOptions {
  steps: number;
  /** img2img strength in (0, 1] */
  strength?: number;
  /**
   * how strength cuts the schedule: 'slice' as the SD / SDXL img2img pipelines (the last
   * int(N * strength) timesteps), 'scheduler' as LCMScheduler.set_timesteps(N, strength)
   * (the LCM img2img pipeline: a shortened origin grid, all N steps run)
   */
  strengthMode?: 'slice' | 'scheduler';
  /** explicit timesteps (LCM / TCD custom timesteps such as [800]) */
  timesteps?: number[];
  /** TCD gamma / DDIM eta (the pipelines default to 0) */
  eta?: number;
}

export interface Scheduler {
  readonly name: string;
  plan(options: PlanOptions): Plan;
}
