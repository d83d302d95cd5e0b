// safetensors header: 8-byte little-endian length N, N bytes of UTF-8 JSON, then the data.
// Validation follows the reference implementation (huggingface/safetensors), strictly:
// offsets must tile the data region exactly (no overlap, no hole, nothing after the last tensor).
import { SafetensorsError } from '../errors';
import { SAFETENSORS_DTYPE_SIZES, isKnownDType } from './dtypes';
import { JsonDuplicateKeyError, JsonFloat, type JsonObject, JsonSyntaxError, type JsonValue, parseStrictJson } from './json';

/** The largest header accepted (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_DIMS = 16;

export interface TensorInfo {
  name: string;
  /** safetensors dtype name (any the format defines; loading checks the engine supports it). */
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data region, [begin, end). */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** N, the JSON header's byte length. */
  headerLength: number;
  /** Absolute file offset of the data region (8 + N). */
  dataStart: number;
  /** Tensors in file order of their data. */
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string> | undefined;
}

type Code =
  | 'TRUNCATED'
  | 'HEADER_SIZE'
  | 'UTF8'
  | 'JSON'
  | 'HEADER'
  | 'DUPLICATE'
  | 'METADATA'
  | 'DTYPE'
  | 'SHAPE'
  | 'OFFSETS';

function err(code: Code, file: string, message: string, tensor?: string): SafetensorsError {
  return new SafetensorsError(`ERR_ONESTEP_SAFETENSORS_${code}`, file, message, tensor);
}

/** Reads N from the first 8 bytes and checks it against the cap and the file size. */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.byteLength < 8) {
    throw err('TRUNCATED', file, `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw err('HEADER_SIZE', file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const len = Number(n);
  if (8 + len > fileSize) {
    throw err('TRUNCATED', file, `header length ${len} runs past the end of the ${fileSize}-byte file`);
  }
  if (len < 2) throw err('HEADER', file, `header length ${len} is too small for a JSON object`);
  return len;
}

function describe(v: JsonValue): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'an object';
  if (v instanceof JsonFloat) return `the non-integer ${v.value}`;
  if (typeof v === 'bigint') return `the integer ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

function parseShape(v: JsonValue | undefined, file: string, name: string): number[] {
  if (v === undefined) throw err('HEADER', file, "missing 'shape'", name);
  if (!Array.isArray(v)) throw err('SHAPE', file, `'shape' must be an array, got ${describe(v)}`, name);
  if (v.length > MAX_DIMS) throw err('SHAPE', file, `shape has ${v.length} dimensions (at most ${MAX_DIMS})`, name);
  return v.map((d, k) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw err('SHAPE', file, `dimension ${k} must be a non-negative integer, got ${describe(d)}`, name);
    }
    return d;
  });
}

function parseOffsets(v: JsonValue | undefined, file: string, name: string): [number, number] {
  if (v === undefined) throw err('HEADER', file, "missing 'data_offsets'", name);
  if (!Array.isArray(v) || v.length !== 2) {
    throw err('OFFSETS', file, `'data_offsets' must be [begin, end], got ${describe(v)}`, name);
  }
  const [b, e] = v;
  for (const x of [b, e]) {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
      throw err('OFFSETS', file, `'data_offsets' must be non-negative integers, got ${describe(x)}`, name);
    }
  }
  if ((e as number) < (b as number)) throw err('OFFSETS', file, `data_offsets end ${e} precedes begin ${b}`, name);
  return [b as number, e as number];
}

function parseMetadata(v: JsonValue, file: string): Record<string, string> {
  if (!(v instanceof Map)) throw err('METADATA', file, `__metadata__ must be an object, got ${describe(v)}`);
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, val] of v) {
    if (typeof val !== 'string') {
      throw err('METADATA', file, `__metadata__ value of '${k}' must be a string, got ${describe(val)}`);
    }
    out[k] = val;
  }
  return out;
}

/**
 * Validates a header. `json` is the N header bytes; `fileSize` the whole file's size (so offsets
 * can be checked against the data region).
 */
export function parseHeaderJson(json: Uint8Array, headerLength: number, fileSize: number, file: string): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw err('UTF8', file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw err('HEADER', file, "header must start with '{'");
  let root: JsonValue;
  try {
    root = parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonDuplicateKeyError) {
      throw err('DUPLICATE', file, e.path ? `duplicate key '${e.key}' in '${e.path}'` : `duplicate tensor name '${e.key}'`);
    }
    if (e instanceof JsonSyntaxError) throw err('JSON', file, `header is not valid JSON: ${e.message}`);
    throw e;
  }
  if (!(root instanceof Map)) throw err('HEADER', file, `header must be a JSON object, got ${describe(root)}`);

  const dataStart = 8 + headerLength;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const list: TensorInfo[] = [];
  for (const [name, entry] of root as JsonObject) {
    if (name === '__metadata__') {
      metadata = parseMetadata(entry, file);
      continue;
    }
    if (!(entry instanceof Map)) throw err('HEADER', file, `entry must be an object, got ${describe(entry)}`, name);
    for (const key of entry.keys()) {
      if (key !== 'dtype' && key !== 'shape' && key !== 'data_offsets') {
        throw err('HEADER', file, `unexpected field '${key}'`, name);
      }
    }
    const dtype = entry.get('dtype');
    if (dtype === undefined) throw err('HEADER', file, "missing 'dtype'", name);
    if (typeof dtype !== 'string' || !isKnownDType(dtype)) {
      throw err('DTYPE', file, `invalid dtype ${describe(dtype)}`, name);
    }
    const shape = parseShape(entry.get('shape'), file, name);
    const dataOffsets = parseOffsets(entry.get('data_offsets'), file, name);
    let numel = 1;
    for (const d of shape) numel *= d;
    const expected = numel * SAFETENSORS_DTYPE_SIZES[dtype];
    const actual = dataOffsets[1] - dataOffsets[0];
    if (!Number.isSafeInteger(expected) || actual !== expected) {
      throw err(
        'OFFSETS',
        file,
        `data_offsets [${dataOffsets[0]}, ${dataOffsets[1]}] hold ${actual} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`,
        name,
      );
    }
    if (dataOffsets[1] > dataSize) {
      throw err(
        'TRUNCATED',
        file,
        `data ends at byte ${dataStart + dataOffsets[1]} but the file has ${fileSize} bytes (truncated data)`,
        name,
      );
    }
    list.push({ name, dtype, shape, dataOffsets });
  }

  // The tensors must tile the data region: sorted by begin, each starts where the previous ended.
  list.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let prev: TensorInfo | undefined;
  for (const t of list) {
    const [b] = t.dataOffsets;
    if (b < cursor) {
      throw err('OFFSETS', file, `data_offsets overlap those of '${prev?.name}'`, t.name);
    }
    if (b > cursor) {
      throw err('OFFSETS', file, `data_offsets leave a gap of ${b - cursor} bytes before this tensor`, t.name);
    }
    cursor = t.dataOffsets[1];
    prev = t;
  }
  if (cursor !== dataSize) {
    throw err(
      cursor < dataSize ? 'OFFSETS' : 'TRUNCATED',
      file,
      `tensors cover ${cursor} bytes of data but the file holds ${dataSize} after the header`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  for (const t of list) tensors.set(t.name, t);
  return { headerLength, dataStart, tensors, metadata };
}

/** Parses and validates the header of a complete safetensors file held in memory. */
export function parseSafetensorsBuffer(buf: Uint8Array, file = '<buffer>'): SafetensorsHeader {
  const n = readHeaderLength(buf.subarray(0, 8), buf.byteLength, file);
  return parseHeaderJson(buf.subarray(8, 8 + n), n, buf.byteLength, file);
}
