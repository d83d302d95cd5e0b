// tokenizer/golden.json: every prompt, tokenized with the vocab.json / merges.txt beside the file,
// once with pad "<|endoftext|>" (SD1.5, SDXL encoder 1: sd15_input_ids) and once with pad "!"
// (SD2.x, SD-Turbo, SDXL encoder 2: sd2_sdxl2_input_ids). Metric: number of differing ids.
import * as fs from 'fs';
import * as path from 'path';
import { CLIPTokenizer } from '../../tokenizer';
import type { CaseResult, GoldenKind } from '../types';

const KIND = 'tokenizer';

const STYLES = [
  { suffix: 'sd15', padToken: '<|endoftext|>', field: 'sd15_input_ids' },
  { suffix: 'sd2', padToken: '!', field: 'sd2_sdxl2_input_ids' },
] as const;

interface GoldenPrompt {
  id?: unknown;
  prompt?: unknown;
  sd15_input_ids?: unknown;
  sd2_sdxl2_input_ids?: unknown;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function isIdArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x));
}

/** Differing positions (a length difference counts once per missing / extra id) and the first one. */
export function compareIds(got: number[], want: number[]): { mismatches: number; first: number } {
  let mismatches = 0;
  let first = -1;
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  return { mismatches, first };
}

const show = (v: number | undefined): string => (v === undefined ? 'none' : String(v));

export const tokenizerKind: GoldenKind = {
  kind: KIND,
  matches: (rel) => rel === 'tokenizer/golden.json' || rel.endsWith('/tokenizer/golden.json'),
  async run(file) {
    let prompts: GoldenPrompt[];
    try {
      const data = JSON.parse(fs.readFileSync(file, 'utf8')) as { prompts?: unknown };
      if (!Array.isArray(data.prompts)) throw new Error('no "prompts" array');
      prompts = data.prompts as GoldenPrompt[];
    } catch (e) {
      return [{ status: 'FAIL', kind: KIND, name: path.basename(file), detail: `cannot read golden file: ${message(e)}` }];
    }
    const dir = path.dirname(file);
    const tokenizers = await Promise.all(
      STYLES.map(async (s) => {
        try {
          return await CLIPTokenizer.fromPretrained(dir, { padToken: s.padToken, modelMaxLength: 77 });
        } catch (e) {
          return new Error(`cannot load tokenizer (pad ${JSON.stringify(s.padToken)}) from ${dir}: ${message(e)}`);
        }
      }),
    );
    const results: CaseResult[] = [];
    prompts.forEach((p, index) => {
      const id = typeof p?.id === 'number' || typeof p?.id === 'string' ? p.id : index;
      STYLES.forEach((style, k) => {
        const name = `prompt${id}.${style.suffix}`;
        const fail = (detail: string, value?: number): CaseResult => ({ status: 'FAIL', kind: KIND, name, metric: 'mismatches', value, tol: 0, detail });
        const tok = tokenizers[k]!;
        if (tok instanceof Error) return results.push(fail(tok.message));
        const want = p?.[style.field];
        if (typeof p?.prompt !== 'string' || !isIdArray(want)) return results.push(fail(`malformed golden entry: needs "prompt" and "${style.field}"`));
        let got: number[];
        try {
          got = tok.encode(p.prompt);
        } catch (e) {
          return results.push(fail(`encode failed: ${message(e)}`));
        }
        const { mismatches, first } = compareIds(got, want);
        if (mismatches === 0) return results.push({ status: 'PASS', kind: KIND, name, metric: 'mismatches', value: 0, tol: 0 });
        return results.push(
          fail(`first difference at position ${first}: got ${show(got[first])}, expected ${show(want[first])} (${got.length} vs ${want.length} ids)`, mismatches),
        );
      });
    });
    return results;
  },
};
