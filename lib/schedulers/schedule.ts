// The training noise schedule (betas -> alphas_cumprod) from a scheduler config, in float32
// exactly as diffusers builds it with torch.
import { ConfigError } from '../errors';
import { f32, torchCumprodF32, torchLinspaceF32 } from './float32';

export interface NoiseScheduleConfig {
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: string;
  trained_betas?: number[] | null;
  rescale_betas_zero_snr?: boolean;
}

export function betasFor(cfg: NoiseScheduleConfig, where = 'scheduler config'): Float32Array {
  const T = cfg.num_train_timesteps ?? 1000;
  if (!Number.isInteger(T) || T < 2 || T > 100000) throw new ConfigError(`${where}: num_train_timesteps ${T} is not supported`);
  if (cfg.rescale_betas_zero_snr) throw new ConfigError(`${where}: rescale_betas_zero_snr is not implemented`);
  if (cfg.trained_betas) {
    if (!Array.isArray(cfg.trained_betas) || cfg.trained_betas.length !== T) throw new ConfigError(`${where}: trained_betas must hold num_train_timesteps numbers`);
    return Float32Array.from(cfg.trained_betas);
  }
  const b0 = cfg.beta_start ?? 0.0001;
  const b1 = cfg.beta_end ?? 0.02;
  switch (cfg.beta_schedule ?? 'linear') {
    case 'linear':
      return torchLinspaceF32(b0, b1, T);
    case 'scaled_linear': {
      const r = torchLinspaceF32(Math.sqrt(b0), Math.sqrt(b1), T);
      return r.map((v) => f32(v * v));
    }
    case 'squaredcos_cap_v2': {
      const ab = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
      return Float32Array.from({ length: T }, (_, i) => Math.min(1 - ab((i + 1) / T) / ab(i / T), 0.999));
    }
    default:
      throw new ConfigError(`${where}: beta_schedule '${cfg.beta_schedule}' is not supported (linear, scaled_linear, squaredcos_cap_v2)`);
  }
}

/** alphas_cumprod = cumprod(1 - betas), float32. */
export function alphasCumprodFor(cfg: NoiseScheduleConfig, where?: string): Float32Array {
  const betas = betasFor(cfg, where);
  return torchCumprodF32(betas.map((b) => f32(1 - b)));
}
