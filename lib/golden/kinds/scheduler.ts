// Scheduler goldens: schedulers/schedules.json (timesteps, sigmas, img2img slices for many step
// counts) and schedulers/cases/*.json + .safetensors (whole trajectories with a recorded model
// output and recorded noise, so no model or RNG is needed).
import * as fs from 'fs';
import * as path from 'path';
import { openSafetensors } from '../../safetensors';
import { type Plan, createScheduler, schedulerForClass } from '../../schedulers';
import type { SchedulerConfig } from '../../schedulers/common';
import { applyStep } from '../../schedulers/step';
import { relL2 } from '../compare';
import type { CaseResult, GoldenKind } from '../types';

const FAMILY: Record<string, string> = {
  euler_a_turbo: 'euler_a',
  euler_turbo: 'euler',
  lcm: 'lcm',
  lcm_sdxl: 'lcm',
  tcd: 'tcd',
  ddim_trailing: 'ddim',
  ddim_trailing_alpha1: 'ddim',
  instaflow: 'flow',
};

interface CaseJson {
  case: string;
  family: string;
  scheduler_config?: SchedulerConfig;
  latent_shape: number[];
  eta?: number | null;
  strength?: number | null;
  custom_timesteps?: number[] | null;
  set_timesteps_kwargs?: { num_inference_steps?: number; strength?: number; timesteps?: number[] };
  timesteps: number[];
  timesteps_full?: number[];
  init_noise_sigma: number;
  img2img_pipeline?: string | null;
  scheduler_class?: string | null;
  steps: Record<string, unknown>[];
}

const sameList = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
/** float32 precision: within 2 ulp */
const close32 = (a: number, b: number) => a === b || Math.abs(a - b) <= 2.5e-7 * Math.max(Math.abs(a), Math.abs(b));

/** Our scheduler for a case: its class from the metadata, else (no diffusers class: InstaFlow) its family. */
function schedulerName(c: { family: string; scheduler_class?: string | null }): string {
  const byClass = typeof c.scheduler_class === 'string' ? schedulerForClass(c.scheduler_class) : undefined;
  if (typeof c.scheduler_class === 'string' && !byClass) throw new Error(`scheduler class '${c.scheduler_class}' is not supported`);
  const byFamily = FAMILY[c.family];
  if (byClass && byFamily && byClass !== byFamily) throw new Error(`family '${c.family}' is ${byFamily}, its scheduler_class ${c.scheduler_class} is ${byClass}`);
  const name = byClass ?? byFamily;
  if (!name) throw new Error(`unknown scheduler family '${c.family}' without a scheduler_class`);
  return name;
}

function planFor(c: CaseJson): Plan {
  const sched = createScheduler(c.scheduler_config ?? {}, schedulerName(c));
  const kw = c.set_timesteps_kwargs ?? {};
  const unknown = Object.keys(kw).filter((k) => !['num_inference_steps', 'strength', 'timesteps'].includes(k));
  if (unknown.length) throw new Error(`set_timesteps argument ${unknown.join(', ')} is not supported`);
  const timesteps = kw.timesteps ?? c.custom_timesteps ?? undefined;
  const steps = kw.num_inference_steps ?? (timesteps ?? c.timesteps).length;
  const mode = c.img2img_pipeline === undefined || c.img2img_pipeline === null ? undefined : ({ lcm_img2img: 'scheduler', sd_img2img: 'slice' } as const)[c.img2img_pipeline as 'lcm_img2img' | 'sd_img2img'];
  if (c.img2img_pipeline && !mode) throw new Error(`img2img_pipeline '${c.img2img_pipeline}' is not supported (lcm_img2img, sd_img2img)`);
  const strength = kw.strength ?? c.strength ?? undefined;
  return sched.plan({ steps, timesteps, eta: c.eta ?? undefined, strength, strengthMode: mode ?? 'slice' });
}

const SCALARS = ['sigma', 'sigma_next', 'sigma_up', 'sigma_down', 'model_input_divisor', 'prev_timestep', 'timestep_s', 'alpha_prod_t', 'alpha_prod_t_prev', 'alpha_prod_s', 'c_skip', 'c_out', 'dt'];

async function runCase(file: string): Promise<CaseResult> {
  const c = JSON.parse(fs.readFileSync(file, 'utf8')) as CaseJson;
  const name = c.case;
  const fail = (detail: string): CaseResult => ({ status: 'FAIL', kind: 'scheduler', name, detail });
  let plan: Plan;
  try {
    plan = planFor(c);
  } catch (e) {
    return fail(`plan: ${(e as Error).message}`);
  }
  if (!sameList(plan.timesteps, c.timesteps)) return fail(`timesteps [${plan.timesteps}] != [${c.timesteps}]`);
  if (c.timesteps_full && !sameList(plan.timestepsFull, c.timesteps_full)) return fail(`timesteps_full [${plan.timestepsFull}] != [${c.timesteps_full}]`);
  if (!close32(plan.initNoiseSigma, c.init_noise_sigma)) return fail(`init_noise_sigma ${plan.initNoiseSigma} != ${c.init_noise_sigma}`);
  for (let i = 0; i < c.steps.length; i++) {
    const want = c.steps[i];
    const got = plan.steps[i];
    for (const k of SCALARS) {
      if (typeof want[k] !== 'number') continue;
      const v = k === 'model_input_divisor' ? 1 / got.inputScale : got.scalars[k];
      if (v === undefined || !close32(v, want[k] as number)) return fail(`step ${i}: ${k} ${v} != ${want[k]}`);
    }
    if (typeof want.noise_drawn === 'boolean' && want.noise_drawn !== got.drawNoise) return fail(`step ${i}: noise_drawn ${got.drawNoise} != ${want.noise_drawn}`);
    // the step's timestep at the reference's precision, and what the model receives (float32)
    if (typeof want.t === 'number' && got.t !== want.t) return fail(`step ${i}: t ${got.t} != ${want.t}`);
    if (typeof want.t_float32 === 'number' && Math.fround(got.t) !== want.t_float32) return fail(`step ${i}: float32(t) ${Math.fround(got.t)} != ${want.t_float32}`);
  }

  const t = openSafetensors(file.replace(/\.json$/, '.safetensors'));
  try {
    const shape = c.latent_shape;
    let worst = 0;
    let worstName = '';
    const cmp = (label: string, got: ArrayLike<number>, want: ArrayLike<number>) => {
      const e = relL2(got, want);
      if (!(e <= worst)) {
        worst = e;
        worstName = label;
      }
    };
    // the starting latents
    let x: Float32Array;
    if (t.has('image_latents')) {
      const img = t.float32('image_latents');
      const n = t.float32('img2img_noise');
      const a = plan.addNoise as { sample: number; noise: number };
      x = img.map((v, i) => Math.fround(a.sample * v) + Math.fround(a.noise * n[i]));
    } else {
      x = t.float32('initial_noise').map((v) => v * plan.initNoiseSigma);
    }
    cmp('latents_start', x, t.float32('latents_start'));
    for (let i = 0; i < plan.steps.length; i++) {
      const s = plan.steps[i];
      const p = `step${i}`;
      cmp(`${p}.sample`, x, t.float32(`${p}.sample`));
      cmp(`${p}.model_input`, x.map((v) => v * s.inputScale), t.float32(`${p}.model_input`));
      const noise = t.has(`${p}.noise`) ? t.float32(`${p}.noise`) : undefined;
      const r = await applyStep(shape, x, t.float32(`${p}.model_output`), s.coeffs, noise);
      cmp(`${p}.prev_sample`, r.prev, t.float32(`${p}.prev_sample`));
      const dk = c.steps[i].denoised_key as string | undefined;
      if (dk && t.has(`${p}.${dk}`)) cmp(`${p}.${dk}`, r.denoised, t.float32(`${p}.${dk}`));
      x = r.prev;
    }
    cmp('final', x, t.float32('final'));
    const tol = 1e-5;
    return { status: worst <= tol ? 'PASS' : 'FAIL', kind: 'scheduler', name, metric: 'rel_l2', value: worst, tol, detail: worst <= tol ? undefined : `worst ${worstName}` };
  } finally {
    t.close();
  }
}

interface SchedulesJson {
  families: Record<string, { by_num_inference_steps: Record<string, Record<string, unknown>> }>;
}

function runSchedules(file: string): CaseResult[] {
  const s = JSON.parse(fs.readFileSync(file, 'utf8')) as SchedulesJson;
  // each family's scheduler config, from the trajectory cases of that family (their `family` field)
  const casesDir = path.join(path.dirname(file), 'cases');
  const configs = new Map<string, SchedulerConfig[]>();
  for (const f of fs.readdirSync(casesDir).filter((x) => x.endsWith('.json')).sort()) {
    const c = JSON.parse(fs.readFileSync(path.join(casesDir, f), 'utf8')) as CaseJson;
    if (typeof c.family !== 'string') continue;
    const list = configs.get(c.family) ?? [];
    list.push(c.scheduler_config ?? {});
    configs.set(c.family, list);
  }
  const results: CaseResult[] = [];
  for (const [family, data] of Object.entries(s.families)) {
    const list = configs.get(family) ?? [];
    const distinct = [...new Set(list.map((x) => JSON.stringify(x)))];
    const configProblem = list.length === 0 ? `no trajectory case of family '${family}' gives its scheduler config` : distinct.length > 1 ? `the cases of family '${family}' disagree on the scheduler config` : undefined;
    const config = (list[0] ?? {}) as SchedulerConfig;
    for (const [n, want] of Object.entries(data.by_num_inference_steps)) {
      const name = `${family}.n${n}`;
      const problems: string[] = [];
      try {
        if (configProblem) throw new Error(configProblem);
        const sched = createScheduler(config, schedulerName({ family, scheduler_class: typeof config._class_name === 'string' ? config._class_name : null }));
        const plan = sched.plan({ steps: Number(n) });
        if (!sameList(plan.timesteps, want.timesteps as number[])) problems.push(`timesteps [${plan.timesteps}] != [${want.timesteps}]`);
        if (typeof want.init_noise_sigma === 'number' && !close32(plan.initNoiseSigma, want.init_noise_sigma)) problems.push(`init_noise_sigma ${plan.initNoiseSigma}`);
        if (Array.isArray(want.sigmas)) {
          const sig = [...plan.steps.map((st) => st.scalars.sigma), 0];
          if (!(want.sigmas as number[]).every((v, i) => close32(sig[i], v))) problems.push('sigmas differ');
        }
        if (Array.isArray(want.prev_timesteps) && !sameList(plan.steps.map((st) => st.scalars.prev_timestep), want.prev_timesteps as number[])) problems.push('prev_timesteps differ');
        const i2i = (want.img2img ?? {}) as Record<string, { t_start?: number; timesteps: number[]; error?: string }>;
        for (const [strength, slice] of Object.entries(i2i)) {
          if (slice.error) {
            // the reference refuses this combination: so must we
            let refused = false;
            try {
              sched.plan({ steps: Number(n), strength: Number(strength), strengthMode: 'scheduler' });
            } catch {
              refused = true;
            }
            if (!refused) problems.push(`img2img ${strength}: accepted, the reference refuses it (${slice.error.slice(0, 60)}...)`);
            continue;
          }
          // a slice names its t_start (the SD / SDXL img2img pipelines); LCM img2img shortens the grid in set_timesteps
          const mode = slice.t_start === undefined ? 'scheduler' : 'slice';
          let ts: number[] = [];
          try {
            ts = sched.plan({ steps: Number(n), strength: Number(strength), strengthMode: mode }).timesteps;
          } catch {
            ts = []; // no step to run: the reference yields an empty list
          }
          if (!sameList(ts, slice.timesteps)) problems.push(`img2img ${strength}: [${ts}] != [${slice.timesteps}]`);
        }
      } catch (e) {
        problems.push((e as Error).message);
      }
      results.push(problems.length ? { status: 'FAIL', kind: 'scheduler', name, metric: 'mismatches', value: problems.length, tol: 0, detail: problems.join('; ') } : { status: 'PASS', kind: 'scheduler', name, metric: 'mismatches', value: 0, tol: 0 });
    }
  }
  return results;
}

export const schedulerKind: GoldenKind = {
  kind: 'scheduler',
  matches: (rel) => /(^|\/)schedulers\/(cases\/[^/]+\.json|schedules\.json)$/.test(rel),
  async run(file) {
    if (path.basename(file) === 'schedules.json') return runSchedules(file);
    try {
      return [await runCase(file)];
    } catch (e) {
      return [{ status: 'FAIL', kind: 'scheduler', name: path.basename(file, '.json'), detail: (e as Error).message }];
    }
  },
};
