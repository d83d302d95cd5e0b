// Shared pieces of the schedulers: config reading, linear forms, timestep spacing.
import { ArgumentError, ConfigError } from '../errors';
import { f32, roundHalfEven } from './float32';
import { alphasCumprodFor, type NoiseScheduleConfig } from './schedule';
import type { StepCoefficients } from './types';

export type SchedulerConfig = NoiseScheduleConfig & Record<string, unknown>;
export type Prediction = 'epsilon' | 'v_prediction' | 'sample';

/** a * x + b * e, with x the latents and e the model output */
export interface Lin {
  x: number;
  e: number;
}
export const lin = (x: number, e: number): Lin => ({ x, e });
export const add = (p: Lin, q: Lin, s = 1, t = 1): Lin => ({ x: s * p.x + t * q.x, e: s * p.e + t * q.e });
export const scale = (p: Lin, s: number): Lin => ({ x: s * p.x, e: s * p.e });

/** Coefficients from d = dLin, prev = prevLin + g2 * d + nu * noise. */
export function coeffs(d: Lin, prev: Lin, g2 = 0, nu = 0): StepCoefficients {
  return { a1: d.x, b1: d.e, a2: prev.x, b2: prev.e, g2, nu };
}

/** The smallest step count >= `from` whose img2img slice runs a step: int(n * strength) >= 1. */
export function minSliceSteps(from: number, strength: number): number {
  if (!(strength > 0 && strength <= 1)) throw new ArgumentError(`strength must be in (0, 1], got ${strength}`);
  let n = Math.max(1, from, Math.ceil(1 / strength) - 1);
  while (Math.floor(n * strength) < 1) n++;
  return n;
}

export class SchedulerBase {
  readonly T: number;
  readonly alphasCumprod: Float32Array;
  readonly prediction: Prediction;

  constructor(
    readonly name: string,
    readonly config: SchedulerConfig,
  ) {
    const where = `${name} config`;
    this.T = config.num_train_timesteps ?? 1000;
    this.alphasCumprod = alphasCumprodFor(config, where);
    const p = (config.prediction_type as string | undefined) ?? 'epsilon';
    if (p !== 'epsilon' && p !== 'v_prediction' && p !== 'sample') throw new ConfigError(`${where}: prediction_type '${p}' is not supported`);
    this.prediction = p;
    if (config.thresholding === true) throw new ConfigError(`${where}: thresholding is not implemented`);
    if (config.clip_sample === true) throw new ConfigError(`${where}: clip_sample is not implemented (the SD pipelines turn it off)`);
    if (config.use_karras_sigmas === true) throw new ConfigError(`${where}: use_karras_sigmas is not implemented`);
  }

  ac(t: number): number {
    if (!Number.isInteger(t) || t < 0 || t >= this.T) throw new ArgumentError(`${this.name}: timestep ${t} outside [0, ${this.T})`);
    return this.alphasCumprod[t];
  }

  get finalAlphaCumprod(): number {
    return this.config.set_alpha_to_one === true ? 1 : this.alphasCumprod[0];
  }

  /** x0 and epsilon as linear forms of (x, model output), DDPM parametrisation at alpha_prod a. */
  x0Eps(a: number): { x0: Lin; eps: Lin } {
    const sa = f32(Math.sqrt(a));
    const sb = f32(Math.sqrt(f32(1 - a)));
    switch (this.prediction) {
      case 'epsilon':
        return { x0: lin(1 / sa, -sb / sa), eps: lin(0, 1) };
      case 'v_prediction':
        return { x0: lin(sa, -sb), eps: lin(sb, sa) };
      default:
        return { x0: lin(0, 1), eps: lin(1 / sb, -sa / sb) };
    }
  }

  checkSteps(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.T) throw new ArgumentError(`${this.name}: steps must be an integer in 1..${this.T}, got ${n}`);
  }

  /** set_timesteps spacing of the Euler and DDIM schedulers (numpy semantics). */
  spacedTimesteps(n: number, where: string): number[] {
    const spacing = (this.config.timestep_spacing as string | undefined) ?? 'leading';
    const offset = (this.config.steps_offset as number | undefined) ?? 0;
    const T = this.T;
    switch (spacing) {
      case 'trailing': {
        // np.round(np.arange(T, 0, -T / n)) - 1: numpy's arange length and values
        const step = -T / n;
        const len = Math.ceil(-T / step);
        return Array.from({ length: len }, (_, i) => roundHalfEven(T + i * step) - 1);
      }
      case 'leading': {
        const ratio = Math.floor(T / n);
        return Array.from({ length: n }, (_, i) => roundHalfEven(i * ratio) + offset).reverse();
      }
      case 'linspace': {
        return Array.from({ length: n }, (_, i) => roundHalfEven(n === 1 ? 0 : ((T - 1) * i) / (n - 1))).reverse();
      }
      default:
        throw new ConfigError(`${where}: timestep_spacing '${spacing}' is not supported (trailing, leading, linspace)`);
    }
  }

  /** img2img by slicing (SD / SDXL img2img pipelines): t_start = N - int(N * strength). */
  sliceStart(n: number, strength: number): number {
    if (!(strength > 0 && strength <= 1)) throw new ArgumentError(`strength must be in (0, 1], got ${strength}`);
    const start = n - Math.floor(n * strength);
    if (start >= n) {
      throw new ArgumentError(`steps ${n} x strength ${strength} leaves no step to run (int(steps * strength) must reach 1): pass steps ${minSliceSteps(n, strength)} or more, or a larger strength`);
    }
    return start;
  }
}
