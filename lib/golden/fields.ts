// What a golden case may say about itself. Every field of a case's metadata is either a parameter
// the runner reads (and so must understand) or a description that changes nothing it computes;
// a field that is neither is a failure naming it, never silently dropped (another fixture set of
// the same format may use a field this runner does not know, and must not run something else).

/** A case the runner cannot read as written: the line FAILs with this message. */
export class CaseFieldError extends Error {}

/** Fields that describe a case (provenance, prose, statistics) and change nothing computed. */
export const DESCRIPTIVE_FIELDS: readonly string[] = [
  'description',
  'style',
  'notes',
  'semantics',
  'checked',
  'crosscheck_rel_err',
  'formula',
  'reference',
  'stats',
  'tolerance',
  'kind',
  'model',
  'inputs',
  'outputs',
];

/** Throws naming every key of `obj` that is neither in `known` nor descriptive. */
export function checkFields(obj: Record<string, unknown>, known: readonly string[], what: string, descriptive: readonly string[] = DESCRIPTIVE_FIELDS): void {
  const extra = Object.keys(obj).filter((k) => !known.includes(k) && !descriptive.includes(k));
  if (extra.length) throw new CaseFieldError(`${what} ${extra.map((k) => `'${k}'`).join(', ')} ${extra.length > 1 ? 'are' : 'is'} not supported by the runner`);
}

export function fieldNumber(obj: Record<string, unknown>, key: string, what: string): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new CaseFieldError(`${what} '${key}' must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

export function fieldString(obj: Record<string, unknown>, key: string, what: string): string {
  const v = obj[key];
  if (typeof v !== 'string') throw new CaseFieldError(`${what} '${key}' must be a string, got ${JSON.stringify(v)}`);
  return v;
}

export function fieldNumbers(obj: Record<string, unknown>, key: string, what: string, length?: number): number[] {
  const v = obj[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x)) || (length !== undefined && v.length !== length)) {
    throw new CaseFieldError(`${what} '${key}' must be a list of ${length ?? ''}${length !== undefined ? ' ' : ''}numbers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The tensor names a case lists as its inputs or outputs (a list, or an object keyed by name). */
export function listedNames(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  if (isObject(v)) return Object.keys(v);
  return [];
}
