// A checkpoint = one safetensors file or a sharded set (*.safetensors.index.json), located in a
// diffusers component folder with the variant naming diffusers uses (*.fp16.safetensors).
import * as fs from 'fs';
import * as path from 'path';
import { FileNotFoundError, SafetensorsError } from '../errors';
import type { NativeTensor } from '../native';
import { SafetensorsFile } from './file';
import type { TensorInfo } from './header';
import type { TensorSource } from './source';

export interface CheckpointOptions {
  /** e.g. 'fp16': prefer `<name>.fp16.safetensors`; falls back to the plain file when absent. */
  variant?: string;
  /** Base file names to look for in a folder (default: diffusion_pytorch_model, model). */
  weightNames?: string[];
}

export class Checkpoint implements TensorSource {
  private readonly byName = new Map<string, SafetensorsFile>();

  private constructor(
    /** The file or index the checkpoint was opened from. */
    readonly source: string,
    readonly shards: SafetensorsFile[],
    /** The variant actually loaded (undefined when the plain files were used). */
    readonly variant: string | undefined,
    readonly metadata: Record<string, string> | undefined,
  ) {
    for (const shard of shards) {
      for (const name of shard.names()) {
        const other = this.byName.get(name);
        if (other) {
          throw new SafetensorsError(
            'ERR_ONESTEP_SAFETENSORS_DUPLICATE',
            shard.path,
            `tensor also present in shard ${path.basename(other.path)}`,
            name,
          );
        }
        this.byName.set(name, shard);
      }
    }
  }

  /** Opens a .safetensors file, a .safetensors.index.json, or a diffusers component folder. */
  static open(location: string, options: CheckpointOptions = {}): Checkpoint {
    if (!fs.existsSync(location)) throw new FileNotFoundError(location, 'checkpoint');
    if (fs.statSync(location).isDirectory()) {
      const found = locate(location, options);
      return found.index
        ? Checkpoint.openIndex(found.file, found.variant)
        : Checkpoint.single(found.file, found.variant);
    }
    if (location.endsWith('.json')) return Checkpoint.openIndex(location, undefined);
    return Checkpoint.single(location, undefined);
  }

  private static single(file: string, variant: string | undefined): Checkpoint {
    const f = SafetensorsFile.open(file);
    return new Checkpoint(file, [f], variant, f.metadata);
  }

  private static openIndex(indexFile: string, variant: string | undefined): Checkpoint {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
    } catch (e) {
      throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_INDEX', indexFile, `index is not valid JSON: ${(e as Error).message}`);
    }
    const weightMap = (parsed as { weight_map?: unknown } | null)?.weight_map;
    if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
      throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_INDEX', indexFile, "index has no 'weight_map' object");
    }
    const dir = path.dirname(indexFile);
    const shardNames = new Set<string>();
    for (const [tensor, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '.' || shard === '..' || shard.includes('\\')) {
        throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_INDEX', indexFile, `shard ${JSON.stringify(shard)} is not a plain file name`, tensor);
      }
      shardNames.add(shard);
    }
    const shards: SafetensorsFile[] = [];
    try {
      for (const s of shardNames) shards.push(SafetensorsFile.open(path.join(dir, s)));
      const byFile = new Map(shards.map((f) => [path.basename(f.path), f]));
      for (const [tensor, shard] of Object.entries(weightMap as Record<string, string>)) {
        if (!byFile.get(shard)!.has(tensor)) {
          throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_INDEX', indexFile, `listed in shard ${shard} but not found there`, tensor);
        }
      }
      const meta = (parsed as { metadata?: unknown }).metadata;
      const metadata =
        meta && typeof meta === 'object' && !Array.isArray(meta)
          ? Object.fromEntries(Object.entries(meta as Record<string, unknown>).map(([k, v]) => [k, String(v)]))
          : undefined;
      return new Checkpoint(indexFile, shards, variant, metadata);
    } catch (e) {
      for (const s of shards) s.close();
      throw e;
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (!f) throw new SafetensorsError('ERR_ONESTEP_SAFETENSORS_MISSING', this.source, 'no such tensor', name);
    return f;
  }

  info(name: string): TensorInfo {
    return this.fileOf(name).info(name);
  }

  tensor(name: string): NativeTensor {
    return this.fileOf(name).tensor(name);
  }

  float32(name: string): Float32Array {
    return this.fileOf(name).float32(name);
  }

  close(): void {
    for (const s of this.shards) s.close();
  }
}

interface Located {
  file: string;
  index: boolean;
  variant: string | undefined;
}

function locate(dir: string, options: CheckpointOptions): Located {
  const bases = options.weightNames ?? ['diffusion_pytorch_model', 'model'];
  const tried: string[] = [];
  const exists = (name: string) => {
    tried.push(name);
    return fs.existsSync(path.join(dir, name));
  };
  for (const base of bases) {
    if (options.variant) {
      const v = options.variant;
      // diffusers names: model.fp16.safetensors, model.safetensors.index.fp16.json (older: model.fp16.safetensors.index.json)
      if (exists(`${base}.${v}.safetensors`)) return { file: path.join(dir, `${base}.${v}.safetensors`), index: false, variant: v };
      for (const idx of [`${base}.safetensors.index.${v}.json`, `${base}.${v}.safetensors.index.json`]) {
        if (exists(idx)) return { file: path.join(dir, idx), index: true, variant: v };
      }
    }
  }
  for (const base of bases) {
    if (exists(`${base}.safetensors`)) return { file: path.join(dir, `${base}.safetensors`), index: false, variant: undefined };
    if (exists(`${base}.safetensors.index.json`)) {
      return { file: path.join(dir, `${base}.safetensors.index.json`), index: true, variant: undefined };
    }
  }
  throw new FileNotFoundError(`${dir} (looked for ${tried.join(', ')})`, 'safetensors weights');
}

export function openCheckpoint(location: string, options?: CheckpointOptions): Checkpoint {
  return Checkpoint.open(location, options);
}
