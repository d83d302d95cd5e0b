// EulerDiscreteScheduler and EulerAncestralDiscreteScheduler (SD-Turbo, SDXL-Turbo,
// SDXL-Lightning): sigma-space Euler steps over a spaced subset of the training timesteps.
import { f32 } from './float32';
import { type Lin, SchedulerBase, type SchedulerConfig, add, coeffs, lin, scale } from './common';
import type { Plan, PlanOptions, Scheduler, StepPlan } from './types';

export class EulerScheduler extends SchedulerBase implements Scheduler {
  constructor(
    config: SchedulerConfig,
    readonly ancestral: boolean,
  ) {
    super(ancestral ? 'euler_a' : 'euler', config);
  }

  /** sigma = sqrt((1 - ac) / ac) in float32, at an integral timestep */
  sigma(t: number): number {
    const a = this.ac(t);
    return f32(Math.sqrt(f32(f32(1 - a) / a)));
  }

  /** x0 as a linear form (the scheduler's pred_original_sample) */
  private x0(sigma: number): Lin {
    switch (this.prediction) {
      case 'epsilon':
        return lin(1, -sigma);
      case 'v_prediction': {
        const s2 = sigma * sigma + 1;
        return lin(1 / s2, -sigma / Math.sqrt(s2));
      }
      default:
        return lin(0, 1);
    }
  }

  plan(o: PlanOptions): Plan {
    this.checkSteps(o.steps);
    const full = this.spacedTimesteps(o.steps, `${this.name} config`);
    const sigmas = [...full.map((t) => this.sigma(t)), 0];
    const spacing = (this.config.timestep_spacing as string | undefined) ?? 'leading';
    const sigmaMax = Math.max(...sigmas);
    const initNoiseSigma = spacing === 'trailing' || spacing === 'linspace' ? sigmaMax : f32(Math.sqrt(f32(f32(sigmaMax * sigmaMax) + 1)));
    const begin = o.strength !== undefined ? this.sliceStart(full.length, o.strength) : 0;
    const steps: StepPlan[] = [];
    for (let i = begin; i < full.length; i++) {
      const sigma = sigmas[i];
      const next = sigmas[i + 1];
      const x0 = this.x0(sigma);
      const divisor = f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));
      const scalars: Record<string, number> = { sigma, sigma_next: next, model_input_divisor: divisor };
      let prev: Lin;
      let nu = 0;
      if (this.ancestral) {
        const s2 = f32(sigma * sigma);
        const n2 = f32(next * next);
        const up = f32(Math.sqrt(f32(f32(n2 * f32(s2 - n2)) / s2)));
        const down = f32(Math.sqrt(f32(n2 - f32(up * up))));
        scalars.sigma_up = up;
        scalars.sigma_down = down;
        // prev = x + (x - x0) / sigma * (down - sigma) + up * noise
        prev = add(lin(1, 0), scale(add(lin(1, 0), x0, 1, -1), (down - sigma) / sigma));
        nu = up;
      } else {
        prev = add(lin(1, 0), scale(add(lin(1, 0), x0, 1, -1), (next - sigma) / sigma));
      }
      steps.push({ t: full[i], inputScale: 1 / divisor, coeffs: coeffs(x0, prev, 0, nu), drawNoise: true, scalars });
    }
    const plan: Plan = {
      scheduler: this.name,
      timesteps: full.slice(begin),
      timestepsFull: full,
      timestepDtype: 'float32',
      initNoiseSigma,
      steps,
      denoisedName: 'pred_original_sample',
    };
    if (o.strength !== undefined) plan.addNoise = { sample: 1, noise: sigmas[begin] };
    return plan;
  }
}
