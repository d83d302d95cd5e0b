// ConsistencyDecoderScheduler (diffusers): a 1024-step cosine schedule, sigma_data 0.5, and the
// fixed two-step sampling [1008, 512] of OpenAI's consistency decoder. Coefficients are computed
// in float32 step by step as torch does (cumprod accumulating in double, as torch's CPU kernel).

const f = Math.fround;

export interface ConsistencyDecoderSchedule {
  timesteps: number[];
  /** x_T = initNoiseSigma * noise */
  initNoiseSigma: number;
  /** per timestep: model input = cIn * x; x0 = cOut * out + cSkip * x */
  cIn: number[];
  cOut: number[];
  cSkip: number[];
  /** to re-noise toward the next timestep: x = sqrtAlpha * x0 + sqrtOneMinusAlpha * noise (last: unused) */
  sqrtAlphaNext: number[];
  sqrtOneMinusAlphaNext: number[];
}

export function consistencyDecoderSchedule(numTrainTimesteps = 1024, sigmaData = 0.5): ConsistencyDecoderSchedule {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const ab = new Float32Array(numTrainTimesteps);
  let acc = 1; // double accumulator
  for (let i = 0; i < numTrainTimesteps; i++) {
    const beta = f(Math.min(1 - alphaBar((i + 1) / numTrainTimesteps) / alphaBar(i / numTrainTimesteps), 0.999));
    acc *= f(1 - beta);
    ab[i] = f(acc);
  }
  const sd2 = f(sigmaData * sigmaData);
  const coeff = (t: number) => {
    const a = ab[t];
    const sigma = f(Math.sqrt(f(f(1 / a) - 1)));
    const sqrtRecip = f(Math.sqrt(f(1 / a)));
    const denom = f(f(sigma * sigma) + sd2);
    return {
      cSkip: f(f(sqrtRecip * sd2) / denom),
      cOut: f(f(sigma * sigmaData) / f(Math.sqrt(denom))),
      cIn: f(sqrtRecip / f(Math.sqrt(denom))),
    };
  };
  const timesteps = [1008, 512];
  const c = timesteps.map(coeff);
  const next = timesteps.map((_, i) => (i + 1 < timesteps.length ? timesteps[i + 1] : -1));
  return {
    timesteps,
    initNoiseSigma: f(Math.sqrt(f(1 - ab[timesteps[0]]))),
    cIn: c.map((x) => x.cIn),
    cOut: c.map((x) => x.cOut),
    cSkip: c.map((x) => x.cSkip),
    sqrtAlphaNext: next.map((t) => (t < 0 ? 0 : f(Math.sqrt(ab[t])))),
    sqrtOneMinusAlphaNext: next.map((t) => (t < 0 ? 0 : f(Math.sqrt(f(1 - ab[t]))))),
  };
}
