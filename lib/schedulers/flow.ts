// The rectified-flow Euler loop of InstaFlow (RectifiedFlowPipeline): t_i = (1 - i/N) * 1000,
// x <- x + v / N. No input scaling, no noise after the initial draw. The timesteps are Python
// floats in the reference (666.6666666666667 at N = 3), rounded to float32 only at the UNet input,
// so the plan keeps them in float64.
import { ArgumentError } from '../errors';
import { f32 } from './float32';
import type { Plan, PlanOptions, Scheduler } from './types';

export class RectifiedFlowScheduler implements Scheduler {
  readonly name = 'flow';

  plan(o: PlanOptions): Plan {
    const n = o.steps;
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new ArgumentError(`flow: steps must be an integer in 1..1000, got ${n}`);
    if (o.strength !== undefined) throw new ArgumentError('flow: img2img (strength) is not defined for the rectified-flow loop');
    const dt = 1 / n;
    const timesteps = Array.from({ length: n }, (_, i) => (1 - i / n) * 1000);
    const steps = timesteps.map((t) => ({
      t,
      inputScale: 1,
      coeffs: { a1: 0, b1: 0, a2: 1, b2: f32(dt), g2: 0, nu: 0 },
      drawNoise: false,
      scalars: { dt },
    }));
    return { scheduler: 'flow', timesteps, timestepsFull: timesteps, timestepDtype: 'float64', initNoiseSigma: 1, steps };
  }
}
