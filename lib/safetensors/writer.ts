// Writing safetensors: the same layout the reference writes (header padded with spaces to a
// multiple of 8, tensors sorted by descending dtype alignment then name, data contiguous).
import * as fs from 'fs';
import { ArgumentError } from '../errors';
import { SAFETENSORS_DTYPE_SIZES, type SupportedDType, encodeFromFloat32, isKnownDType } from './dtypes';

export interface TensorToWrite {
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes in `dtype`, or float32 values to convert (F32 / F16 / BF16 / I64 only). */
  data: Uint8Array | Float32Array | { bytes(): Uint8Array };
}

function toBytes(name: string, t: TensorToWrite): Uint8Array {
  const d = t.data;
  if (d instanceof Float32Array) {
    if (!['F32', 'F16', 'BF16', 'I64'].includes(t.dtype)) {
      throw new ArgumentError(`tensor '${name}': float32 values can only be written as F32, F16, BF16 or I64`);
    }
    return encodeFromFloat32(t.dtype as SupportedDType, d);
  }
  if (d instanceof Uint8Array) return d;
  if (d && typeof (d as { bytes?: unknown }).bytes === 'function') return (d as { bytes(): Uint8Array }).bytes();
  throw new ArgumentError(`tensor '${name}': data must be a Uint8Array, a Float32Array or a native tensor`);
}

/** Serialises tensors (and string metadata) into one safetensors buffer. */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const entries = Object.entries(tensors).map(([name, t]) => {
    if (name === '__metadata__') throw new ArgumentError("'__metadata__' is reserved and cannot name a tensor");
    if (!isKnownDType(t.dtype)) throw new ArgumentError(`tensor '${name}': unknown dtype '${t.dtype}'`);
    if (!Array.isArray(t.shape) || t.shape.some((x) => !Number.isSafeInteger(x) || x < 0)) {
      throw new ArgumentError(`tensor '${name}': shape must be non-negative integers`);
    }
    const bytes = toBytes(name, t);
    const expected = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZES[t.dtype];
    if (bytes.byteLength !== expected) {
      throw new ArgumentError(`tensor '${name}': ${bytes.byteLength} bytes for shape [${t.shape.join(', ')}] of ${t.dtype} (expected ${expected})`);
    }
    return { name, dtype: t.dtype, shape: t.shape, bytes };
  });
  entries.sort((a, b) => SAFETENSORS_DTYPE_SIZES[b.dtype] - SAFETENSORS_DTYPE_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new ArgumentError(`metadata '${k}' must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.byteLength] };
    offset += e.bytes.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const e of entries) {
    out.set(e.bytes, pos);
    pos += e.bytes.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temp file + rename). */
export function saveSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const buf = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, buf);
  fs.renameSync(tmp, path);
}

export interface StreamedTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** called once, when the tensor's turn comes: its raw little-endian bytes */
  bytes: () => Uint8Array;
}

/**
 * Writes a safetensors file tensor by tensor, so that it never holds more than one tensor's data
 * (for multi-gigabyte checkpoints). Same layout as serializeSafetensors, written to a temporary
 * file and renamed.
 */
export function saveSafetensorsStreaming(path: string, tensors: StreamedTensor[], metadata?: Record<string, string>): void {
  const sorted = [...tensors].sort(
    (a, b) => SAFETENSORS_DTYPE_SIZES[b.dtype] - SAFETENSORS_DTYPE_SIZES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of sorted) {
    if (!isKnownDType(t.dtype)) throw new ArgumentError(`tensor '${t.name}': unknown dtype '${t.dtype}'`);
    const n = t.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + n] };
    offset += n;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length), 0);
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const t of sorted) {
      const b = t.bytes();
      const n = t.shape.reduce((a, c) => a * c, 1) * SAFETENSORS_DTYPE_SIZES[t.dtype];
      if (b.byteLength !== n) throw new ArgumentError(`tensor '${t.name}': ${b.byteLength} bytes, expected ${n}`);
      fs.writeSync(fd, b);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
}
