// LCMScheduler and TCDScheduler: timesteps chosen from the original-schedule grid
// (original_inference_steps), consistency-model boundary conditions (LCM) or the strategic
// stochastic sampling of TCD (gamma = eta).
import { ArgumentError } from '../errors';
import { f32 } from './float32';
import { type Lin, SchedulerBase, type SchedulerConfig, add, coeffs, lin, scale } from './common';
import type { Plan, PlanOptions, Scheduler, StepPlan } from './types';

abstract class ConsistencyBase extends SchedulerBase {
  /** LCMScheduler.set_timesteps (TCD selects the same way). */
  selectTimesteps(o: PlanOptions): number[] {
    if (o.timesteps) {
      const ts = o.timesteps;
      if (ts.length === 0 || ts.some((t, i) => !Number.isInteger(t) || t < 0 || t >= this.T || (i > 0 && t >= ts[i - 1]))) {
        throw new ArgumentError(`${this.name}: custom timesteps must be integers in [0, ${this.T}) in descending order, got [${ts.join(', ')}]`);
      }
      return [...ts];
    }
    this.checkSteps(o.steps);
    const original = (this.config.original_inference_steps as number | undefined) ?? 50;
    const strength = o.strengthMode === 'scheduler' && o.strength !== undefined ? o.strength : 1;
    if (!(strength > 0 && strength <= 1)) throw new ArgumentError(`strength must be in (0, 1], got ${strength}`);
    const k = Math.floor(this.T / original);
    const count = Math.floor(original * strength);
    if (o.steps > count) throw new ArgumentError(`${this.name}: ${o.steps} steps exceed the ${count} timesteps of the original schedule at this strength`);
    const origin = Array.from({ length: count }, (_, i) => (i + 1) * k - 1).reverse();
    const step = count / o.steps; // np.linspace(0, count, steps, endpoint=False): i * step
    return Array.from({ length: o.steps }, (_, i) => origin[Math.floor(i * step)]);
  }

  planWith(o: PlanOptions, step: (i: number, t: number, next: number | undefined, last: boolean) => StepPlan, denoised: Plan['denoisedName']): Plan {
    const full = this.selectTimesteps(o);
    const begin = o.strength !== undefined && o.strengthMode !== 'scheduler' ? this.sliceStart(full.length, o.strength) : 0;
    const steps = full.slice(begin).map((t, j) => {
      const i = begin + j;
      return step(i, t, full[i + 1], i === full.length - 1);
    });
    const plan: Plan = { scheduler: this.name, timesteps: full.slice(begin), timestepsFull: full, timestepDtype: 'int64', initNoiseSigma: 1, steps, denoisedName: denoised };
    if (o.strength !== undefined) {
      const a = this.ac(plan.timesteps[0]);
      plan.addNoise = { sample: f32(Math.sqrt(a)), noise: f32(Math.sqrt(f32(1 - a))) };
    }
    return plan;
  }
}

export class LCMScheduler extends ConsistencyBase implements Scheduler {
  constructor(config: SchedulerConfig) {
    super('lcm', config);
  }

  plan(o: PlanOptions): Plan {
    const scaling = (this.config.timestep_scaling as number | undefined) ?? 10;
    const sd = 0.5;
    return this.planWith(
      o,
      (_i, t, next, last) => {
        const prevT = last ? t : (next as number);
        const a = this.ac(t);
        const aPrev = prevT >= 0 ? this.ac(prevT) : this.finalAlphaCumprod;
        const st = f32(t * scaling);
        const cSkip = f32(f32(sd * sd) / f32(f32(st * st) + f32(sd * sd)));
        const cOut = f32(st / f32(Math.sqrt(f32(f32(st * st) + f32(sd * sd)))));
        const { x0 } = this.x0Eps(a);
        const denoised = add(scale(x0, cOut), lin(cSkip, 0));
        const scalars = { prev_timestep: prevT, alpha_prod_t: a, alpha_prod_t_prev: aPrev, c_skip: cSkip, c_out: cOut };
        if (last) return { t, inputScale: 1, coeffs: coeffs(denoised, lin(0, 0), 1, 0), drawNoise: false, scalars };
        return {
          t,
          inputScale: 1,
          coeffs: coeffs(denoised, lin(0, 0), f32(Math.sqrt(aPrev)), f32(Math.sqrt(f32(1 - aPrev)))),
          drawNoise: true,
          scalars,
        };
      },
      'denoised',
    );
  }
}

export class TCDScheduler extends ConsistencyBase implements Scheduler {
  constructor(config: SchedulerConfig) {
    super('tcd', config);
  }

  plan(o: PlanOptions): Plan {
    const eta = o.eta ?? 0;
    if (!(eta >= 0 && eta <= 1)) throw new ArgumentError(`tcd: eta (gamma) must be in [0, 1], got ${eta}`);
    return this.planWith(
      o,
      (_i, t, next, last) => {
        const prevT = last ? 0 : (next as number);
        const s = Math.floor(f32(f32(1 - eta) * prevT));
        const a = this.ac(t);
        const aPrev = prevT >= 0 ? this.ac(prevT) : this.finalAlphaCumprod;
        const aS = this.ac(s);
        const { x0, eps } = this.x0Eps(a);
        const xs: Lin = add(scale(x0, f32(Math.sqrt(aS))), scale(eps, f32(Math.sqrt(f32(1 - aS)))));
        const scalars = { prev_timestep: prevT, timestep_s: s, alpha_prod_t: a, alpha_prod_t_prev: aPrev, alpha_prod_s: aS };
        if (eta > 0 && !last) {
          const r = f32(aPrev / aS);
          return { t, inputScale: 1, coeffs: coeffs(xs, lin(0, 0), f32(Math.sqrt(r)), f32(Math.sqrt(f32(1 - r)))), drawNoise: true, scalars };
        }
        return { t, inputScale: 1, coeffs: coeffs(xs, lin(0, 0), 1, 0), drawNoise: false, scalars };
      },
      'pred_noised_sample',
    );
  }
}
