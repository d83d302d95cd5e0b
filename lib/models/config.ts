// Reading config.json files strictly: a missing file, bad JSON or a field of the wrong type is a
// clear error naming the file and the field.
import * as fs from 'fs';
import { ConfigError, FileNotFoundError } from '../errors';

export type Json = Record<string, unknown>;

export function readJsonFile(file: string, what = 'config'): Json {
  if (!fs.existsSync(file)) throw new FileNotFoundError(file, what);
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${file}: must hold a JSON object`);
  return v as Json;
}

/** Typed accessors for one config object; every error names the file and the field. */
export class ConfigReader {
  constructor(
    readonly cfg: Json,
    readonly file: string,
  ) {}

  private bad(field: string, want: string): never {
    throw new ConfigError(`${this.file}: '${field}' must be ${want}, got ${JSON.stringify(this.cfg[field])}`);
  }

  has(field: string): boolean {
    return this.cfg[field] !== undefined && this.cfg[field] !== null;
  }

  int(field: string, dflt?: number): number {
    const v = this.cfg[field];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.bad(field, 'a non-negative integer');
    return v;
  }

  num(field: string, dflt?: number): number {
    const v = this.cfg[field];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
      return dflt;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.bad(field, 'a number');
    return v;
  }

  str(field: string, dflt?: string): string {
    const v = this.cfg[field];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
      return dflt;
    }
    if (typeof v !== 'string') this.bad(field, 'a string');
    return v;
  }

  bool(field: string, dflt?: boolean): boolean {
    const v = this.cfg[field];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
      return dflt;
    }
    if (typeof v !== 'boolean') this.bad(field, 'true or false');
    return v;
  }

  /** An integer, or a list of integers of length n (a single value is repeated). */
  intList(field: string, n: number, dflt?: number | number[]): number[] {
    let v = this.cfg[field];
    if (v === undefined || v === null) {
      if (dflt === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
      v = dflt;
    }
    if (typeof v === 'number') v = Array(n).fill(v);
    if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0)) {
      this.bad(field, `an integer or a list of ${n} integers`);
    }
    return v as number[];
  }

  strList(field: string, dflt?: string[]): string[] {
    const v = this.cfg[field] ?? dflt;
    if (v === undefined) throw new ConfigError(`${this.file}: missing '${field}'`);
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) this.bad(field, 'a list of strings');
    return v as string[];
  }

  /** Rejects a field whose value the engine does not implement. */
  require(field: string, ok: boolean, what: string): void {
    if (!ok) throw new ConfigError(`${this.file}: '${field}' = ${JSON.stringify(this.cfg[field])} is not supported (${what})`);
  }
}
