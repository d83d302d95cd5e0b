// The golden runner: finds fixture files under the given paths, hands each to the kind that owns
// it, and reports one line per case. Works on any folder laid out like ../shared/fixtures.
import * as fs from 'fs';
import * as path from 'path';
import { kinds } from './kinds';
import type { CaseResult, FixtureContext, GoldenKind } from './types';

/** Top-level folders of a fixture tree; the folder that holds them is the fixture root. */
export const FIXTURE_FOLDERS = ['models', 'golden', 'tokenizer', 'rng', 'schedulers', 'lora', 'single_file', 'configs'];

export interface RunOptions {
  device?: 'cpu' | 'cuda';
  /** Only cases whose "<kind> <name>" matches. */
  filter?: RegExp;
  /** Called for every case as soon as it is known. */
  onResult?: (r: CaseResult) => void;
  /**
   * Model name -> a single-file checkpoint standing in for models/<name>: only the goldens of those
   * models run (network goldens; tokenizer, rng and scheduler fixtures are skipped), loaded from the files.
   */
  singleFiles?: Record<string, string>;
}

export interface RunSummary {
  results: CaseResult[];
  passed: number;
  failed: number;
  todo: number;
}

function walk(p: string, out: string[]): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e), out);
  } else if (st.isFile()) {
    out.push(p);
  }
}

/** The fixture root of a file and its path relative to it ('/' separators), or undefined. */
export function locateInFixtureTree(file: string): { root: string; rel: string } | undefined {
  const abs = path.resolve(file);
  let dir = path.dirname(abs);
  for (;;) {
    const parent = path.dirname(dir);
    if (FIXTURE_FOLDERS.includes(path.basename(dir))) {
      return { root: parent, rel: path.relative(parent, abs).split(path.sep).join('/') };
    }
    if (parent === dir) return undefined;
    dir = parent;
  }
}

function kindFor(rel: string): GoldenKind | undefined {
  return kinds.find((k) => k.matches(rel));
}

export async function runGolden(paths: string[], options: RunOptions = {}): Promise<RunSummary> {
  const summary: RunSummary = { results: [], passed: 0, failed: 0, todo: 0 };
  const emit = (r: CaseResult) => {
    if (options.filter && !options.filter.test(`${r.kind} ${r.name}`)) return;
    summary.results.push(r);
    if (r.status === 'PASS') summary.passed++;
    else if (r.status === 'FAIL') summary.failed++;
    else summary.todo++;
    options.onResult?.(r);
  };
  const seen = new Set<string>();
  for (const p of paths) {
    if (!fs.existsSync(p)) {
      emit({ status: 'FAIL', kind: 'runner', name: p, detail: 'path does not exist' });
      continue;
    }
    const explicit = fs.statSync(p).isFile();
    const files: string[] = [];
    walk(p, files);
    for (const file of files) {
      const abs = path.resolve(file);
      if (seen.has(abs)) continue;
      seen.add(abs);
      const loc = locateInFixtureTree(abs);
      const kind = loc && kindFor(loc.rel);
      if (!loc || !kind) {
        if (explicit) emit({ status: 'FAIL', kind: 'runner', name: file, detail: 'not a golden fixture file' });
        continue;
      }
      if (options.singleFiles && kind.kind !== 'network') continue;
      const ctx: FixtureContext = { root: loc.root, device: options.device ?? 'cpu', singleFiles: options.singleFiles };
      let results: CaseResult[];
      try {
        results = await kind.run(abs, ctx);
      } catch (e) {
        results = [{ status: 'FAIL', kind: kind.kind, name: loc.rel, detail: `runner error: ${(e as Error).message}` }];
      }
      for (const r of results) emit(r);
    }
  }
  return summary;
}

export function formatResult(r: CaseResult): string {
  const parts = [r.status, `${r.kind}`, r.name];
  if (r.status !== 'TODO' && r.metric !== undefined && r.value !== undefined) {
    parts.push(`${r.metric}=${formatNumber(r.value)}`);
    if (r.tol !== undefined) parts.push(`tol=${formatNumber(r.tol)}`);
  }
  if (r.detail) parts.push(`(${r.detail})`);
  return parts.join(' ');
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toExponential(2);
}
