// DDIMScheduler (Hyper-SD's 2/4/8-step LoRAs use it with timestep_spacing "trailing"). eta adds
// the DDIM variance noise; the pipelines pass eta = 0.
import { ArgumentError } from '../errors';
import { f32 } from './float32';
import { SchedulerBase, type SchedulerConfig, add, coeffs, scale } from './common';
import type { Plan, PlanOptions, Scheduler, StepPlan } from './types';

export class DDIMScheduler extends SchedulerBase implements Scheduler {
  constructor(config: SchedulerConfig) {
    super('ddim', config);
  }

  plan(o: PlanOptions): Plan {
    this.checkSteps(o.steps);
    const eta = o.eta ?? 0;
    if (!(eta >= 0)) throw new ArgumentError(`ddim: eta must be >= 0, got ${eta}`);
    const full = this.spacedTimesteps(o.steps, 'ddim config');
    const begin = o.strength !== undefined ? this.sliceStart(full.length, o.strength) : 0;
    const ratio = Math.floor(this.T / o.steps);
    const steps: StepPlan[] = full.slice(begin).map((t) => {
      const prevT = t - ratio;
      const a = this.ac(t);
      const aPrev = prevT >= 0 ? this.ac(prevT) : this.finalAlphaCumprod;
      const { x0, eps } = this.x0Eps(a);
      // variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev); std = eta * sqrt(variance)
      const variance = f32(f32(f32(1 - aPrev) / f32(1 - a)) * f32(1 - f32(a / aPrev)));
      const std = f32(eta * f32(Math.sqrt(variance)));
      const dir = f32(Math.sqrt(f32(f32(1 - aPrev) - f32(std * std))));
      const prev = add(scale(x0, f32(Math.sqrt(aPrev))), scale(eps, dir));
      const scalars = { prev_timestep: prevT, alpha_prod_t: a, alpha_prod_t_prev: aPrev, uses_final_alpha_cumprod: prevT < 0 ? 1 : 0 };
      return { t, inputScale: 1, coeffs: coeffs(x0, prev, 0, std), drawNoise: eta > 0, scalars };
    });
    const plan: Plan = { scheduler: 'ddim', timesteps: full.slice(begin), timestepsFull: full, timestepDtype: 'int64', initNoiseSigma: 1, steps, denoisedName: 'pred_original_sample' };
    if (o.strength !== undefined) {
      const a = this.ac(plan.timesteps[0]);
      plan.addNoise = { sample: f32(Math.sqrt(a)), noise: f32(Math.sqrt(f32(1 - a))) };
    }
    return plan;
  }
}

