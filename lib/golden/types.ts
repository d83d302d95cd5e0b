// The golden runner's contract with each fixture kind (tokenizer, rng, schedulers, networks, ...).
import type { Precision } from '../graph';

export type CaseStatus = 'PASS' | 'FAIL' | 'TODO';

export interface CaseResult {
  status: CaseStatus;
  /** Fixture kind, e.g. 'tokenizer', 'rng', 'unet'. */
  kind: string;
  /** Case name, unique within its file, e.g. 'prompt17.sd15' or 'pipe_sd21_turbo_1step'. */
  name: string;
  /** Metric name and value for PASS / FAIL lines, e.g. 'mismatches' 0 or 'rel_l2' 3e-7. */
  metric?: string;
  value?: number;
  tol?: number;
  /** Why it failed, or what is missing for TODO. */
  detail?: string;
}

/** Also the target every model of a case is loaded for (a ModelTarget). */
export interface FixtureContext {
  /** The folder laid out like ../shared/fixtures (holding models/, golden/, tokenizer/, ...). */
  root: string;
  device: 'cpu' | 'cuda';
  /** the CPU backend's GEMM arithmetic (bf16 cases are held to a bf16 tolerance) */
  precision: Precision;
  /** model name -> a single-file checkpoint that stands in for models/<name> (only those models' goldens run) */
  singleFiles?: Record<string, string>;
}

export interface GoldenKind {
  /** Short name used in output lines. */
  readonly kind: string;
  /** Whether this kind owns the file; `rel` is the path relative to the fixture root, with '/' separators. */
  matches(rel: string): boolean;
  /** Runs every case of the file. Must never throw for a failing case: report FAIL instead. */
  run(file: string, ctx: FixtureContext): Promise<CaseResult[]>;
}
