// The scheduler registry: scheduler_config.json class names and the names users pass
// (`scheduler: 'lcm'`) map to coefficient functions. A new scheduler is one file and one line here.
import * as fs from 'fs';
import { ArgumentError, ConfigError } from '../errors';
import type { SchedulerConfig } from './common';
import { DDIMScheduler } from './ddim';
import { EulerScheduler } from './euler';
import { RectifiedFlowScheduler } from './flow';
import { LCMScheduler, TCDScheduler } from './lcm';
import type { Scheduler } from './types';

export type SchedulerName = 'euler_a' | 'euler' | 'lcm' | 'tcd' | 'ddim' | 'flow';

const BY_NAME: Record<SchedulerName, (cfg: SchedulerConfig) => Scheduler> = {
  euler_a: (c) => new EulerScheduler(c, true),
  euler: (c) => new EulerScheduler(c, false),
  lcm: (c) => new LCMScheduler(c),
  tcd: (c) => new TCDScheduler(c),
  ddim: (c) => new DDIMScheduler(c),
  flow: () => new RectifiedFlowScheduler(),
};

const BY_CLASS: Record<string, SchedulerName> = {
  EulerAncestralDiscreteScheduler: 'euler_a',
  EulerDiscreteScheduler: 'euler',
  LCMScheduler: 'lcm',
  TCDScheduler: 'tcd',
  DDIMScheduler: 'ddim',
};

export const SCHEDULER_NAMES = Object.keys(BY_NAME) as SchedulerName[];

/** The scheduler name of a diffusers scheduler class (scheduler_config.json's _class_name), or undefined. */
export function schedulerForClass(cls: string): SchedulerName | undefined {
  return Object.prototype.hasOwnProperty.call(BY_CLASS, cls) ? BY_CLASS[cls] : undefined;
}

/**
 * A scheduler from a scheduler config (its `_class_name`), or `name` built on the same noise
 * schedule (as `Scheduler.from_config(pipe.scheduler.config)` does in diffusers).
 */
export function createScheduler(config: SchedulerConfig, name?: SchedulerName | string): Scheduler {
  let key: SchedulerName | undefined;
  if (name !== undefined) {
    key = (SCHEDULER_NAMES as string[]).includes(name) ? (name as SchedulerName) : schedulerForClass(name);
    if (!key) throw new ArgumentError(`unknown scheduler '${name}' (known: ${SCHEDULER_NAMES.join(', ')})`);
  } else {
    const cls = config._class_name as string | undefined;
    key = typeof cls === 'string' ? schedulerForClass(cls) : undefined;
    if (!key) throw new ConfigError(`scheduler class '${cls}' is not supported (supported: ${Object.keys(BY_CLASS).join(', ')})`);
  }
  return BY_NAME[key](config);
}

export function readSchedulerConfig(file: string): SchedulerConfig {
  let cfg: unknown;
  try {
    cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: ${(e as Error).message}`);
  }
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new ConfigError(`${file}: must hold a JSON object`);
  return cfg as SchedulerConfig;
}

export { alphasCumprodFor, betasFor } from './schedule';
export { minSliceSteps } from './common';
export type { Plan, PlanOptions, Scheduler, StepCoefficients, StepPlan } from './types';
