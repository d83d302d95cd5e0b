// safetensors dtypes: every name the format defines (so any valid file parses), and the subset
// the engine reads. Plus float16 / bfloat16 conversions in plain JS for writers and tests.

/** Bytes per element for every dtype the safetensors format defines. */
export const SAFETENSORS_DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
});

/** The dtypes the engine loads into native tensors. */
export type SupportedDType = 'F32' | 'F16' | 'BF16' | 'I64';
export const SUPPORTED_DTYPES: readonly SupportedDType[] = ['F32', 'F16', 'BF16', 'I64'];

export function isKnownDType(d: string): boolean {
  return Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZES, d);
}

export function isSupportedDType(d: string): d is SupportedDType {
  return (SUPPORTED_DTYPES as readonly string[]).includes(d);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> IEEE binary16 bits, round to nearest even (as numpy / torch do). */
export function floatToHalfBits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >>> 13) & 0x3ff) : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = abs - 0x38000000;
  const rem = r & 0x1fff;
  r >>>= 13;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++;
  return sign | r;
}

export function halfBitsToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  if (exp === 0) return sign * man * 2 ** -24;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

/** float32 -> bfloat16 bits, round to nearest even. */
export function floatToBf16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x40;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0];
}

/** Decodes little-endian tensor bytes of a supported dtype into float32 values. */
export function decodeToFloat32(dtype: SupportedDType, bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = SAFETENSORS_DTYPE_SIZES[dtype];
  const n = Math.floor(bytes.byteLength / size);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'F32': out[i] = dv.getFloat32(4 * i, true); break;
      case 'F16': out[i] = halfBitsToFloat(dv.getUint16(2 * i, true)); break;
      case 'BF16': out[i] = bf16BitsToFloat(dv.getUint16(2 * i, true)); break;
      case 'I64': out[i] = Number(dv.getBigInt64(8 * i, true)); break;
    }
  }
  return out;
}

/** Encodes float32 values as little-endian bytes of a supported dtype (I64 truncates toward zero). */
export function encodeFromFloat32(dtype: SupportedDType, values: ArrayLike<number>): Uint8Array {
  const size = SAFETENSORS_DTYPE_SIZES[dtype];
  const out = new Uint8Array(values.length * size);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    switch (dtype) {
      case 'F32': dv.setFloat32(4 * i, v, true); break;
      case 'F16': dv.setUint16(2 * i, floatToHalfBits(v), true); break;
      case 'BF16': dv.setUint16(2 * i, floatToBf16Bits(v), true); break;
      case 'I64': dv.setBigInt64(8 * i, BigInt(Math.trunc(v)), true); break;
    }
  }
  return out;
}
