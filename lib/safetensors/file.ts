// One safetensors file: the header is validated in TS, the data is memory-mapped natively and
// tensors are zero-copy views of the mapping.
import { FileNotFoundError, SafetensorsError, UnsupportedDtypeError } from '../errors';
import { addon, callNative, type NativeMappedFile, type NativeTensor } from '../native';
import { isSupportedDType } from './dtypes';
import { type SafetensorsHeader, type TensorInfo, parseHeaderJson, readHeaderLength } from './header';

export class SafetensorsFile {
  private mapping: NativeMappedFile | undefined;

  private constructor(
    readonly path: string,
    readonly header: SafetensorsHeader,
    mapping: NativeMappedFile,
  ) {
    this.mapping = mapping;
  }

  /** Maps `path` and validates its header. Throws FileNotFoundError or SafetensorsError. */
  static open(path: string): SafetensorsFile {
    let mapping: NativeMappedFile;
    try {
      mapping = callNative(() => addon().mapFile(path));
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_ONESTEP_FILE_NOT_FOUND') throw new FileNotFoundError(path);
      throw e;
    }
    try {
      const size = mapping.size;
      const n = readHeaderLength(mapping.readBytes(0, Math.min(8, size)), size, path);
      const header = parseHeaderJson(mapping.readBytes(8, 8 + n), n, size, path);
      return new SafetensorsFile(path, header, mapping);
    } catch (e) {
      mapping.close();
      throw e;
    }
  }

  get metadata(): Record<string, string> | undefined {
    return this.header.metadata;
  }

  /** Tensor names in data order. */
  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.header.tensors.get(name);
    if (!t) throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_MISSING', this.path, 'no such tensor', name);
    return t;
  }

  /** A native tensor viewing the mapped data (no copy). The mapping lives while any view does. */
  tensor(name: string): NativeTensor {
    const t = this.info(name);
    if (!isSupportedDType(t.dtype)) throw new UnsupportedDtypeError(this.path, name, t.dtype);
    const m = this.mapping;
    if (!m) throw new SafetensorsError('ERR_ONESTEP_DISPOSED', this.path, 'file was closed', name);
    const begin = this.header.dataStart + t.dataOffsets[0];
    const end = this.header.dataStart + t.dataOffsets[1];
    return callNative(() => m.tensor(name, t.dtype, t.shape, begin, end));
  }

  /**
   * A zero-copy view of part of a tensor: rows [begin, end) of its first dimension, optionally
   * with another shape of the same element count (e.g. a [C, C, 1, 1] kernel seen as [C, C]).
   */
  view(name: string, options: { rows?: [number, number]; shape?: number[] } = {}): NativeTensor {
    const t = this.info(name);
    if (!isSupportedDType(t.dtype)) throw new UnsupportedDtypeError(this.path, name, t.dtype);
    const m = this.mapping;
    if (!m) throw new SafetensorsError('ERR_ONESTEP_DISPOSED', this.path, 'file was closed', name);
    const rows = t.shape[0] ?? 1;
    const [r0, r1] = options.rows ?? [0, rows];
    if (t.shape.length === 0 || !Number.isInteger(r0) || !Number.isInteger(r1) || r0 < 0 || r1 > rows || r0 > r1) {
      throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_VIEW', this.path, `rows [${r0}, ${r1}) are not within shape [${t.shape.join(', ')}]`, name);
    }
    const rowBytes = (t.dataOffsets[1] - t.dataOffsets[0]) / rows;
    const shape = options.shape ?? [r1 - r0, ...t.shape.slice(1)];
    const begin = this.header.dataStart + t.dataOffsets[0] + r0 * rowBytes;
    const end = this.header.dataStart + t.dataOffsets[0] + r1 * rowBytes;
    return callNative(() => m.tensor(name, t.dtype, shape, begin, end));
  }

  /** The tensor's values converted to float32 (a copy). */
  float32(name: string): Float32Array {
    const t = this.tensor(name);
    try {
      return t.toFloat32();
    } finally {
      t.dispose();
    }
  }

  /** Drops this handle's reference to the mapping; tensors already made stay valid. */
  close(): void {
    this.mapping?.close();
    this.mapping = undefined;
  }
}

export function openSafetensors(path: string): SafetensorsFile {
  return SafetensorsFile.open(path);
}
