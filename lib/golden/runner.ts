// The golden runner: finds fixture files under the given paths, hands each to the kind that owns
// it, and reports one line per case. Works on any folder laid out like ../shared/fixtures.
import * as fs from 'fs';
import * as path from 'path';
import type { Precision } from '../graph';
import { FIXTURE_FOLDERS, FIXTURE_FOLDER_NAMES } from './folders';
import { kinds } from './kinds';
import type { CaseResult, FixtureContext, GoldenKind } from './types';

export { FIXTURE_FOLDERS, FIXTURE_FOLDER_NAMES } from './folders';

export interface RunOptions {
  device?: 'cpu' | 'cuda';
  /** the CPU backend's GEMM arithmetic (default 'fp32') */
  precision?: Precision;
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

/**
 * The fixture root of a file (the folder holding the top-level fixture folders) and its path
 * relative to it ('/' separators), or undefined. The outermost ancestor with a fixture folder's
 * name wins, so models/<model>/tokenizer/ is inside models/, not a tokenizer fixture folder.
 */
export function locateInFixtureTree(file: string): { root: string; rel: string } | undefined {
  const abs = path.resolve(file);
  let found: { root: string; rel: string } | undefined;
  let dir = path.dirname(abs);
  for (;;) {
    const parent = path.dirname(dir);
    if (FIXTURE_FOLDER_NAMES.includes(path.basename(dir))) found = { root: parent, rel: path.relative(parent, abs).split(path.sep).join('/') };
    if (parent === dir) return found;
    dir = parent;
  }
}

/** Whether a file no kind claims may be skipped: data, documentation, or a case folder's auxiliary file. */
function skippable(rel: string): boolean {
  if (rel.endsWith('.md')) return true;
  const slash = rel.indexOf('/');
  const folder = FIXTURE_FOLDERS.find((f) => f.name === rel.slice(0, slash));
  if (!folder) return false;
  return folder.kind === 'data' || !!folder.aux?.test(rel.slice(slash + 1));
}

/** Sub-folders of a fixture root that are not fixture folders (a tree's folders must all be known). */
function unknownFolders(dir: string): string[] {
  const subs = fs.readdirSync(dir).filter((n) => !n.startsWith('.') && fs.statSync(path.join(dir, n)).isDirectory());
  if (!subs.some((n) => FIXTURE_FOLDER_NAMES.includes(n))) return [];
  return subs.filter((n) => !FIXTURE_FOLDER_NAMES.includes(n)).map((n) => path.join(dir, n));
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
    let cases = 0;
    if (!explicit) {
      for (const d of unknownFolders(p)) {
        emit({ status: 'FAIL', kind: 'runner', name: d, detail: `not a known fixture folder (known: ${FIXTURE_FOLDER_NAMES.join(', ')})` });
        cases++;
      }
    }
    const files: string[] = [];
    walk(p, files);
    for (const file of files) {
      const abs = path.resolve(file);
      if (seen.has(abs)) continue;
      seen.add(abs);
      const loc = locateInFixtureTree(abs);
      const kind = loc && kindFor(loc.rel);
      if (!loc || !kind) {
        // a file in a fixture tree that nothing reads could be a case this runner does not know
        if (explicit || (loc && !skippable(loc.rel))) {
          emit({ status: 'FAIL', kind: 'runner', name: file, detail: 'not a golden fixture file (no kind reads it)' });
          cases++;
        }
        continue;
      }
      if (options.singleFiles && kind.kind !== 'network') continue;
      const ctx: FixtureContext = { root: loc.root, device: options.device ?? 'cpu', precision: options.precision ?? 'fp32', singleFiles: options.singleFiles };
      let results: CaseResult[];
      try {
        results = await kind.run(abs, ctx);
      } catch (e) {
        results = [{ status: 'FAIL', kind: kind.kind, name: loc.rel, detail: `runner error: ${(e as Error).message}` }];
      }
      for (const r of results) emit(r);
      cases += results.length;
    }
    if (cases === 0) emit({ status: 'FAIL', kind: 'runner', name: p, detail: options.singleFiles ? 'no golden case of the single-file models under this path' : 'no golden case found under this path' });
  }
  if (summary.results.length === 0 && options.filter) emit({ status: 'FAIL', kind: 'runner', name: String(options.filter), detail: 'the filter matched no case' });
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
