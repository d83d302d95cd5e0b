// Fixture kinds the engine does not run yet. They list their cases as TODO lines (never PASS),
// so the runner shows exactly what remains. Each is replaced by a real kind when its issue lands.
import * as fs from 'fs';
import type { CaseResult, GoldenKind } from '../types';

const todo = (kind: string, name: string, detail: string): CaseResult => ({ status: 'TODO', kind, name, detail });

export const rngKind: GoldenKind = {
  kind: 'rng',
  matches: (rel) => rel.endsWith('rng/rng.json'),
  async run(file) {
    const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { entries?: Record<string, unknown> | { key: string }[] };
    const entries = data.entries ?? {};
    const keys = Array.isArray(entries) ? entries.map((e) => e.key) : Object.keys(entries);
    return keys.map((k) => todo('rng', k, 'torch-compatible generator not implemented yet'));
  },
};

