// rng/rng.json (+ rng.safetensors beside it): every entry regenerated with TorchGenerator and
// compared bit for bit — the stored tensor (in full, or its .head / .tail), the `values` /
// `first8` lists of the JSON, and `sum_float64` (numpy's pairwise float64 sum of the whole tensor).
// Metric: 'mismatches' = values not bit-identical (+1 for a differing sum), tol 0.
//
// How entries are drawn (fixtures README section 3.7):
//   randn.<f32|f16|f64>.seed<s>.<shape>  a fresh generator per entry, in the entry's variant; 'any'
//                                        entries are drawn in both variants and must match in both
//   rand.* / randint.*                   in the drawing order rng.json's `chains` give: each chain is
//                                        one generator, seeded from its first key's seed; an entry
//                                        in no chain fails
//   seq.*                                one generator per variant seeded with rng.json's `seq_seed`,
//                                        called in `seq_order`; 'any' entries must match in both
//                                        variants' runs; an entry not in seq_order fails
import * as fs from 'fs';
import * as path from 'path';
import { TorchGenerator } from '../../rng';
import type { NormalVariant, RngDType } from '../../rng';
import { halfBitsToFloat } from '../../safetensors';
import type { CaseResult, GoldenKind } from '../types';

const KIND = 'rng';
const VARIANTS: readonly NormalVariant[] = ['generic', 'avx2'];
const HEAD = 4096;
const TAIL = 64;
interface RngEntry {
  key: string;
  variant: string;
  dtype: string;
  shape: number[];
  numel: number;
  sum_float64: number;
  stored: string;
  values?: unknown;
  first8?: unknown;
}

type Values = Float32Array | Float64Array | BigInt64Array;

interface StoredTensor {
  dtype: string;
  shape: number[];
  values: Values;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const DTYPE_OF: Record<string, RngDType | 'I64'> = { float32: 'F32', float16: 'F16', float64: 'F64', int64: 'I64' };

// ---- rng.safetensors (F64 included, which the engine's reader does not load) -------------------

function readSafetensors(file: string): Map<string, StoredTensor> {
  const buf = fs.readFileSync(file);
  if (buf.length < 8) throw new Error(`${file}: too short for a safetensors file`);
  const headerLen = Number(buf.readBigUInt64LE(0));
  if (headerLen > buf.length - 8) throw new Error(`${file}: header length ${headerLen} exceeds the file`);
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  const base = 8 + headerLen;
  const out = new Map<string, StoredTensor>();
  for (const [name, infoRaw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const info = infoRaw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const offs = info.data_offsets;
    if (typeof info.dtype !== 'string' || !Array.isArray(info.shape) || !Array.isArray(offs) || offs.length !== 2) {
      throw new Error(`${file}: malformed header entry '${name}'`);
    }
    const [b, e] = offs as number[];
    if (!Number.isSafeInteger(b) || !Number.isSafeInteger(e) || b! < 0 || e! < b! || base + e! > buf.length) {
      throw new Error(`${file}: tensor '${name}' has data offsets outside the file`);
    }
    const bytes = new Uint8Array(buf.subarray(base + b!, base + e!)); // aligned copy
    let values: Values;
    switch (info.dtype) {
      case 'F32':
        values = new Float32Array(bytes.buffer, 0, bytes.length >> 2);
        break;
      case 'F64':
        values = new Float64Array(bytes.buffer, 0, bytes.length >> 3);
        break;
      case 'I64':
        values = new BigInt64Array(bytes.buffer, 0, bytes.length >> 3);
        break;
      case 'F16': {
        const h = new Uint16Array(bytes.buffer, 0, bytes.length >> 1);
        values = Float32Array.from(h, (x) => halfBitsToFloat(x));
        break;
      }
      default:
        throw new Error(`${file}: tensor '${name}' has unexpected dtype ${info.dtype}`);
    }
    out.set(name, { dtype: info.dtype, shape: info.shape as number[], values });
  }
  return out;
}

// ---- numpy's pairwise summation (np.sum of a contiguous float64 array) -------------------------

function pairwiseSum(a: ArrayLike<number>, lo: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[lo + i]!;
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[lo + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = r[j]! + a[lo + i + j]!;
    let res = r[0]! + r[1]! + (r[2]! + r[3]!) + (r[4]! + r[5]! + (r[6]! + r[7]!));
    for (; i < n; i++) res += a[lo + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, lo, n2) + pairwiseSum(a, lo + n2, n - n2);
}

function sumOf(v: Values): number {
  if (v instanceof BigInt64Array) {
    let s = 0n;
    for (const x of v) s += x;
    return Number(s);
  }
  return 0 + pairwiseSum(v, 0, v.length);
}

// ---- comparisons ------------------------------------------------------------------------------

const same = (a: number | bigint | undefined, b: unknown): boolean => {
  if (typeof a === 'bigint') return typeof b === 'bigint' ? a === b : typeof b === 'number' && Number.isInteger(b) && a === BigInt(b);
  return typeof a === 'number' && typeof b === 'number' && Object.is(a, b);
};

const show = (v: unknown): string => (typeof v === 'bigint' ? String(v) : Object.is(v, -0) ? '-0' : String(v));

class Tally {
  mismatches = 0;
  first: string | undefined;
  note(where: string, got: unknown, want: unknown): void {
    this.mismatches++;
    if (this.first === undefined) this.first = `${where}: got ${show(got)}, expected ${show(want)}`;
  }
  problem(text: string, count = 1): void {
    this.mismatches += count;
    if (this.first === undefined) this.first = text;
  }
  /** got[offset + i] against want[i] for every i. */
  compare(label: string, got: Values, offset: number, want: ArrayLike<unknown>): void {
    for (let i = 0; i < want.length; i++) {
      const g = got[offset + i];
      if (!same(g, want[i])) this.note(`${label}[${offset + i}]`, g, want[i]);
    }
  }
}

function checkEntry(tally: Tally, prefix: string, e: RngEntry, got: Values, store: Map<string, StoredTensor>): void {
  if (got.length !== e.numel) {
    tally.problem(`${prefix}generated ${got.length} values, expected ${e.numel}`, e.numel);
    return;
  }
  const base = `${e.variant}/${e.key}`;
  const storedParts: [string, number][] =
    e.stored === 'full' ? [['', 0]] : [['.head', 0], ['.tail', Math.max(0, e.numel - TAIL)]];
  for (const [suffix, offset] of storedParts) {
    const t = store.get(base + suffix);
    const expectLen = e.stored === 'full' ? e.numel : suffix === '.head' ? Math.min(HEAD, e.numel) : Math.min(TAIL, e.numel);
    if (!t) {
      tally.problem(`${prefix}tensor '${base}${suffix}' missing from rng.safetensors`, expectLen);
      continue;
    }
    if (t.values.length !== expectLen) {
      tally.problem(`${prefix}tensor '${base}${suffix}' holds ${t.values.length} values, expected ${expectLen}`, expectLen);
      continue;
    }
    tally.compare(`${prefix}${suffix ? suffix.slice(1) : 'tensor'}`, got, offset, t.values);
  }
  if (e.values !== undefined) {
    if (!Array.isArray(e.values) || e.values.length !== e.numel) tally.problem(`${prefix}malformed "values" list`);
    else tally.compare(`${prefix}values`, got, 0, e.values);
  }
  if (e.first8 !== undefined) {
    if (!Array.isArray(e.first8)) tally.problem(`${prefix}malformed "first8" list`);
    else tally.compare(`${prefix}first8`, got, 0, e.first8);
  }
  const s = sumOf(got);
  if (!Object.is(s, e.sum_float64)) tally.problem(`${prefix}sum_float64: got ${s}, expected ${e.sum_float64}`);
}

// ---- drawing ----------------------------------------------------------------------------------

function seedOf(key: string): bigint {
  const m = /\.seed(\d+)(\.|$)/.exec(key);
  if (!m) throw new Error(`no seed in key '${key}'`);
  return BigInt(m[1]!);
}

function randintRange(key: string): [number, number] {
  const m = /^randint\.seed\d+\.(m?\d+)_(m?\d+)\./.exec(key);
  if (!m) throw new Error(`cannot read low_high from key '${key}'`);
  const num = (s: string): number => (s.startsWith('m') ? -Number(s.slice(1)) : Number(s));
  return [num(m[1]!), num(m[2]!)];
}

/** The generator call a key names: its first part, or for seq.<letter>.<op>_<shape> the op. */
function opOf(key: string): string {
  if (key.startsWith('seq.')) return (key.split('.')[2] ?? '').split('_')[0] ?? '';
  return key.slice(0, key.indexOf('.'));
}

function draw(gen: TorchGenerator, e: RngEntry, variant: NormalVariant): Values {
  const dtype = DTYPE_OF[e.dtype];
  const op = opOf(e.key);
  if (op === 'randn') {
    if (dtype === undefined || dtype === 'I64') throw new Error(`randn: unexpected dtype ${e.dtype}`);
    return gen.randn(e.shape, { dtype, variant });
  }
  if (op === 'rand') {
    if (dtype === undefined || dtype === 'I64') throw new Error(`rand: unexpected dtype ${e.dtype}`);
    return gen.rand(e.shape, { dtype });
  }
  if (op === 'randint') {
    if (dtype !== 'I64') throw new Error(`randint: unexpected dtype ${e.dtype}`);
    const [low, high] = randintRange(e.key);
    return gen.randint(low, high, e.shape);
  }
  throw new Error(`unknown operation in key '${e.key}'`);
}

function validEntry(x: unknown): x is RngEntry {
  const e = x as Partial<RngEntry> | null;
  return (
    !!e &&
    typeof e.key === 'string' &&
    typeof e.variant === 'string' &&
    typeof e.dtype === 'string' &&
    Array.isArray(e.shape) &&
    e.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
    typeof e.numel === 'number' &&
    e.numel === e.shape.reduce((a, b) => a * b, 1) &&
    typeof e.sum_float64 === 'number' &&
    (e.stored === 'full' || e.stored === 'head4096+tail64')
  );
}

const variantsOf = (e: RngEntry): NormalVariant[] => (e.variant === 'any' ? [...VARIANTS] : [e.variant as NormalVariant]);

export const rngKind: GoldenKind = {
  kind: KIND,
  matches: (rel) => rel === 'rng/rng.json' || rel.endsWith('/rng/rng.json'),
  async run(file) {
    let raw: unknown[];
    let data: { entries?: unknown; seq_seed?: unknown; seq_order?: unknown; chains?: unknown };
    try {
      data = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof data;
      if (!Array.isArray(data.entries)) throw new Error('no "entries" array');
      raw = data.entries;
    } catch (e) {
      return [{ status: 'FAIL', kind: KIND, name: path.basename(file), detail: `cannot read rng file: ${message(e)}` }];
    }
    const keyCount = new Map<string, number>();
    for (const x of raw) {
      const k = (x as { key?: unknown } | null)?.key;
      if (typeof k === 'string') keyCount.set(k, (keyCount.get(k) ?? 0) + 1);
    }
    const nameOf = (x: unknown, i: number): string => {
      const e = x as { key?: unknown; variant?: unknown } | null;
      if (typeof e?.key !== 'string') return `entry${i}`;
      return (keyCount.get(e.key) ?? 0) > 1 && typeof e.variant === 'string' ? `${e.variant}/${e.key}` : e.key;
    };

    let store: Map<string, StoredTensor> | Error;
    const stFile = path.join(path.dirname(file), 'rng.safetensors');
    try {
      store = readSafetensors(stFile);
    } catch (e) {
      store = new Error(`cannot read ${stFile}: ${message(e)}`);
    }

    // per entry: the tallies of all its draws, or the error that stopped them
    const tallies = new Map<number, Tally>();
    const errors = new Map<number, string>();
    const tallyOf = (i: number): Tally => {
      let t = tallies.get(i);
      if (!t) tallies.set(i, (t = new Tally()));
      return t;
    };
    const entries: (RngEntry | undefined)[] = raw.map((x, i) => {
      if (validEntry(x) && (x.variant === 'any' || (VARIANTS as readonly string[]).includes(x.variant))) return x;
      errors.set(i, 'malformed entry: needs key, variant (generic|avx2|any), dtype, shape, numel, sum_float64, stored');
      return undefined;
    });
    // `variant` names the draw in messages when an 'any' entry is checked in both variants
    const check = (i: number, variant: NormalVariant | undefined, got: Values): void => {
      const e = entries[i]!;
      if (store instanceof Error) return void errors.set(i, store.message);
      checkEntry(tallyOf(i), variant !== undefined && e.variant === 'any' ? `[${variant}] ` : '', e, got, store);
    };

    // randn.*: a fresh generator per entry and variant
    entries.forEach((e, i) => {
      if (!e || !e.key.startsWith('randn.')) return;
      for (const v of variantsOf(e)) {
        try {
          check(i, v, draw(new TorchGenerator(seedOf(e.key), { variant: v }), e, v));
        } catch (err) {
          errors.set(i, `[${v}] ${message(err)}`);
        }
      }
    });

    // rand.* / randint.*: each chain one generator, in the chain's order
    const byKey = new Map<string, number[]>();
    entries.forEach((e, i) => {
      if (!e) return;
      const list = byKey.get(e.key) ?? [];
      list.push(i);
      byKey.set(e.key, list);
    });
    const keyList = (v: unknown, what: string): string[] | string => {
      if (!Array.isArray(v) || !v.every((k) => typeof k === 'string')) return `rng.json: ${what} must be a list of keys`;
      return v as string[];
    };
    const chained = new Set<string>();
    const chains = data.chains === undefined ? [] : Array.isArray(data.chains) ? data.chains.map((c, n) => keyList(c, `chains[${n}]`)) : ['rng.json: chains must be a list of lists of keys'];
    for (const chain of chains) {
      if (typeof chain === 'string') {
        entries.forEach((e, i) => e && /^rand(int)?\./.test(e.key) && errors.set(i, chain));
        continue;
      }
      let gen: TorchGenerator | undefined;
      let broken: string | undefined;
      chain.forEach((key, pos) => {
        chained.add(key);
        const idx = byKey.get(key) ?? [];
        if (broken !== undefined) return void idx.forEach((i) => errors.set(i, broken as string));
        try {
          if (!idx.length) throw new Error(`chain key '${key}' has no entry in rng.json (its shape is unknown)`);
          if (pos === 0) gen = new TorchGenerator(seedOf(key));
          const e = entries[idx[0]] as RngEntry;
          const got = draw(gen as TorchGenerator, e, 'avx2');
          for (const i of idx) check(i, undefined, got);
        } catch (err) {
          broken = message(err);
          idx.forEach((i) => errors.set(i, broken as string));
          broken = `an earlier draw of its chain failed: ${broken}`;
        }
      });
    }
    entries.forEach((e, i) => {
      if (e && /^rand(int)?\./.test(e.key) && !chained.has(e.key) && !errors.has(i)) errors.set(i, `'${e.key}' is in no chain of rng.json (its drawing order is unknown)`);
    });

    // seq.*: one generator per variant seeded with seq_seed, called in seq_order
    const seqIdx = entries.map((e, i) => (e && e.key.startsWith('seq.') ? i : -1)).filter((i) => i >= 0);
    const order = data.seq_order === undefined ? undefined : keyList(data.seq_order, 'seq_order');
    const seqSeed = data.seq_seed;
    const seqProblem =
      seqIdx.length === 0
        ? undefined
        : typeof order === 'string'
          ? order
          : order === undefined
            ? 'rng.json has seq.* entries but no seq_order'
            : typeof seqSeed !== 'number' || !Number.isSafeInteger(seqSeed) || seqSeed < 0
              ? `rng.json: seq_seed must be a non-negative integer, got ${JSON.stringify(seqSeed)}`
              : undefined;
    if (seqProblem) for (const i of seqIdx) errors.set(i, seqProblem);
    else if (seqIdx.length) {
      const calls = order as string[];
      for (const i of seqIdx) if (!calls.includes((entries[i] as RngEntry).key)) errors.set(i, `'${(entries[i] as RngEntry).key}' is not in seq_order`);
      for (const v of VARIANTS) {
        const g = new TorchGenerator(BigInt(seqSeed as number), { variant: v });
        let failed: string | undefined;
        for (const key of calls) {
          const mine = (byKey.get(key) ?? []).filter((i) => variantsOf(entries[i] as RngEntry).includes(v));
          const all = byKey.get(key) ?? [];
          let got: Values | undefined;
          if (failed === undefined) {
            try {
              if (!all.length) throw new Error(`seq_order key '${key}' has no entry in rng.json (its shape is unknown)`);
              const call = entries[all[0]] as RngEntry;
              if (all.some((i) => (entries[i] as RngEntry).numel !== call.numel || (entries[i] as RngEntry).dtype !== call.dtype)) throw new Error(`${key} entries disagree on shape or dtype`);
              got = draw(g, call, v);
            } catch (err) {
              failed = `[${v}] ${message(err)}`;
            }
          }
          for (const i of mine) {
            if (got === undefined) errors.set(i, failed ?? 'not drawn');
            else {
              try {
                check(i, v, got);
              } catch (err) {
                errors.set(i, `[${v}] ${message(err)}`);
              }
            }
          }
        }
      }
    }

    return raw.map((x, i): CaseResult => {
      const name = nameOf(x, i);
      const err = errors.get(i);
      if (err !== undefined) return { status: 'FAIL', kind: KIND, name, metric: 'mismatches', tol: 0, detail: err };
      const t = tallies.get(i);
      if (!t) {
        return { status: 'FAIL', kind: KIND, name, metric: 'mismatches', tol: 0, detail: `no draw rule for key '${entries[i]?.key}'` };
      }
      if (t.mismatches === 0) return { status: 'PASS', kind: KIND, name, metric: 'mismatches', value: 0, tol: 0 };
      return { status: 'FAIL', kind: KIND, name, metric: 'mismatches', value: t.mismatches, tol: 0, detail: `first difference: ${t.first}` };
    });
  },
};
