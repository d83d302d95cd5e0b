// Small helpers over a header index.
import { ConfigError } from '../errors';
import type { HeaderIndex } from './types';

/** The shape of a key that must exist (a clear error naming the file's layout otherwise). */
export function shapeOf(h: HeaderIndex, key: string, what: string): number[] {
  const t = h.get(key);
  if (!t) throw new ConfigError(`single-file checkpoint: missing '${key}' (${what})`);
  return t.shape;
}

/** Distinct integers N of keys `${prefix}N.` (sorted). */
export function indices(keys: Iterable<string>, prefix: string): number[] {
  const out = new Set<number>();
  for (const k of keys) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

export function hasPrefix(h: HeaderIndex, prefix: string): boolean {
  for (const k of h.keys()) if (k.startsWith(prefix)) return true;
  return false;
}

/** Keys under a prefix, without it. */
export function under(h: HeaderIndex, prefix: string): string[] {
  const out: string[] = [];
  for (const k of h.keys()) if (k.startsWith(prefix)) out.push(k.slice(prefix.length));
  return out;
}
