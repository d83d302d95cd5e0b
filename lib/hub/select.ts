// Which files of a repository a diffusers pipeline needs. Pure functions over a file list, so the
// same rules pick files from the hub's listing (online) and from a cached snapshot (offline).
import { HubError } from './errors';

/** Weight base names the loader looks for (lib/safetensors/checkpoint.ts), in its order. */
export const KNOWN_WEIGHT_BASES = ['diffusion_pytorch_model', 'model'];

/** Weight formats onestep never downloads. */
export const UNSUPPORTED_WEIGHTS_RE = /\.(bin|ckpt|pt|pth|onnx|onnx_data|pb|msgpack|h5|gguf)$/;
const SHARD_RE = /-\d{3,}-of-\d{3,}/;

export interface WeightChoice {
  /** File name in the folder: a .safetensors file or a *.safetensors.index*.json. */
  file: string;
  index: boolean;
  /** The variant chosen, undefined for the plain set. */
  variant: string | undefined;
}

/** Parses a weight file name into base + variant; undefined for shards and non-weights. */
function parseWeightName(name: string): { base: string; variant: string | undefined; index: boolean } | undefined {
  let m = /^(.+)\.safetensors\.index\.([A-Za-z0-9_-]+)\.json$/.exec(name); // model.safetensors.index.fp16.json
  if (m) return { base: m[1]!, variant: m[2], index: true };
  m = /^(.+)\.safetensors\.index\.json$/.exec(name); // model.safetensors.index.json, model.fp16.safetensors.index.json
  if (m) {
    const dot = m[1]!.lastIndexOf('.');
    return dot < 0 ? { base: m[1]!, variant: undefined, index: true } : { base: m[1]!.slice(0, dot), variant: m[1]!.slice(dot + 1), index: true };
  }
  m = /^(.+)\.safetensors$/.exec(name);
  if (m && !SHARD_RE.test(name)) {
    const dot = m[1]!.lastIndexOf('.');
    return dot < 0 ? { base: m[1]!, variant: undefined, index: false } : { base: m[1]!.slice(0, dot), variant: m[1]!.slice(dot + 1), index: false };
  }
  return undefined;
}

/**
 * Chooses ONE set of safetensors weights among the file names of a folder, in the loader's order:
 * with a variant, `<base>.<v>.safetensors` then its index, for each base; then the plain
 * `<base>.safetensors` then `<base>.safetensors.index.json`. Known bases first, then the others.
 */
export function chooseWeights(names: readonly string[], variant: string | undefined): WeightChoice | undefined {
  const have = new Set(names);
  const others = new Set<string>();
  for (const n of names) {
    const p = parseWeightName(n);
    if (p && !KNOWN_WEIGHT_BASES.includes(p.base)) others.add(p.base);
  }
  const bases = [...KNOWN_WEIGHT_BASES, ...[...others].sort()];
  if (variant !== undefined) {
    for (const base of bases) {
      if (have.has(`${base}.${variant}.safetensors`)) return { file: `${base}.${variant}.safetensors`, index: false, variant };
      for (const idx of [`${base}.safetensors.index.${variant}.json`, `${base}.${variant}.safetensors.index.json`]) {
        if (have.has(idx)) return { file: idx, index: true, variant };
      }
    }
  }
  for (const base of bases) {
    if (have.has(`${base}.safetensors`)) return { file: `${base}.safetensors`, index: false, variant: undefined };
    if (have.has(`${base}.safetensors.index.json`)) return { file: `${base}.safetensors.index.json`, index: true, variant: undefined };
  }
  return undefined;
}

/** The variants present among a folder's weight files (for messages). */
export function variantsIn(names: readonly string[]): string[] {
  const out = new Set<string>();
  for (const n of names) {
    const p = parseWeightName(n);
    if (p?.variant !== undefined) out.add(p.variant);
  }
  return [...out].sort();
}

/** Direct children (file names) of `folder` ('' = the repo root) in a list of repo paths. */
export function childrenOf(files: Iterable<string>, folder: string): string[] {
  const prefix = folder === '' ? '' : `${folder}/`;
  const out: string[] = [];
  for (const f of files) {
    if (!f.startsWith(prefix)) continue;
    const rest = f.slice(prefix.length);
    if (rest !== '' && !rest.includes('/')) out.push(rest);
  }
  return out.sort();
}

function isIndexJson(name: string): boolean {
  return /\.index(\.[A-Za-z0-9_-]+)?\.json$/.test(name);
}

export interface FolderPlan {
  folder: string;
  /** Config / tokenizer files and the chosen single weight file or index (repo paths). */
  files: string[];
  /** The chosen weights (repo path of the file or index); undefined when the folder has none. */
  weights: string | undefined;
  weightsAreIndex: boolean;
  /** True when the folder holds a model (config.json), so it must have weights. */
  needsWeights: boolean;
  /** Weight files in formats onestep does not read. */
  unsupported: string[];
  /** Variants of safetensors weights present (for messages). */
  variants: string[];
  /** The folder holds no file at all. */
  empty: boolean;
}

/**
 * Files a folder contributes. A component folder gives its *.json (not weight indexes), *.txt and
 * *.model (tokenizer) files; the repo root of a single-model repo gives only its *.json files.
 */
export function planFolder(files: Iterable<string>, folder: string, variant: string | undefined): FolderPlan {
  const names = childrenOf(files, folder);
  const join = (n: string) => (folder === '' ? n : `${folder}/${n}`);
  const configs = names.filter((n) =>
    folder === '' ? n.endsWith('.json') && !isIndexJson(n) : (n.endsWith('.json') && !isIndexJson(n)) || n.endsWith('.txt') || n.endsWith('.model'),
  );
  const choice = chooseWeights(names, variant);
  const out = configs.map(join);
  if (choice) out.push(join(choice.file));
  return {
    folder,
    files: out,
    weights: choice ? join(choice.file) : undefined,
    weightsAreIndex: choice?.index ?? false,
    needsWeights: names.includes('config.json'),
    unsupported: names.filter((n) => UNSUPPORTED_WEIGHTS_RE.test(n)),
    variants: variantsIn(names),
    empty: names.length === 0,
  };
}

/** Component folder names listed in model_index.json: keys not starting with '_' whose value is [library, class], both non-null. */
export function pipelineComponents(modelIndex: unknown, where: string): string[] {
  if (typeof modelIndex !== 'object' || modelIndex === null || Array.isArray(modelIndex)) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${where}: model_index.json is not a JSON object`);
  }
  const out: string[] = [];
  for (const [key, value] of Object.entries(modelIndex as Record<string, unknown>)) {
    if (key.startsWith('_') || !Array.isArray(value) || value.length < 2) continue;
    if (value[0] === null || value[1] === null || value[0] === undefined || value[1] === undefined) continue;
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(key) || key.includes('..')) {
      throw new HubError('ERR_ONESTEP_HUB_UNSAFE_PATH', `${where}: refusing component name ${JSON.stringify(key)} in model_index.json`);
    }
    out.push(key);
  }
  return out.sort();
}

/** Shard file names (relative to the index's folder) named by a weight index's weight_map, sorted. */
export function indexShards(index: unknown, where: string): unknown[] {
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${where}: weight index has no 'weight_map' object`, { file: where });
  }
  const shards = new Set<unknown>(Object.values(weightMap as Record<string, unknown>));
  if (shards.size === 0) throw new HubError('ERR_ONESTEP_HUB_INVALID_REPO', `${where}: weight index names no shards`, { file: where });
  return [...shards];
}

/** fnmatch-style pattern (as huggingface_hub's allow_patterns): '*' matches across '/', '?', '[seq]', '[!seq]'; a trailing '/' means everything below. */
export function globToRegExp(pattern: string): RegExp {
  const p = pattern.endsWith('/') ? `${pattern}*` : pattern;
  let re = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = p.slice(i + 1, end);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}
