// Reading a Hugging Face tokenizer folder (vocab.json, merges.txt and the optional configs) the way
// the slow CLIPTokenizer does, with a TokenizerError naming the file for anything malformed.
import * as fs from 'fs';
import * as path from 'path';
import { FileNotFoundError, TokenizerError } from '../errors';
import { PY_SPACE } from './clean';

/** Merge lines read from merges.txt: HF reads `lines[1 : 49152 - 256 - 2 + 1]`. */
export const MAX_MERGES = 49152 - 256 - 2;

export const DEFAULT_BOS_TOKEN = '<|startoftext|>';
export const DEFAULT_EOS_TOKEN = '<|endoftext|>';
export const DEFAULT_UNK_TOKEN = '<|endoftext|>';
/** CLIPTokenizer's own default ("hack to enable padding"): the SD1.5 / SDXL-encoder-1 behaviour. */
export const DEFAULT_PAD_TOKEN = '<|endoftext|>';
export const DEFAULT_MODEL_MAX_LENGTH = 77;
/** Largest model_max_length accepted (HF writes int(1e30) to mean "no limit"; CLIP uses 77). */
export const MAX_MODEL_MAX_LENGTH = 1 << 20;

/** Everything a CLIPTokenizer is built from, as read from a folder (or given by the caller). */
export interface TokenizerSpec {
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  padToken?: string;
  additionalSpecialTokens?: string[];
  /** Added tokens with fixed ids (tokenizer_config `added_tokens_decoder`, added_tokens.json). */
  addedTokens?: Map<string, { id: number; special: boolean }>;
  modelMaxLength?: number;
  cleanUpTokenizationSpaces?: boolean;
}

const PY_SPACES = new RegExp(`[${PY_SPACE}]+`, 'u');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');

/** Python `str.strip()`. */
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

/** Python `str.split()` (no argument). */
export function pySplit(s: string): string[] {
  const t = pyStrip(s);
  return t === '' ? [] : t.split(PY_SPACES);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `a string` : `${typeof v} ${String(v)}`;
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new TokenizerError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** vocab.json: an object of token -> non-negative integer id. */
export function parseVocab(text: string, file: string): Map<string, number> {
  const data = parseJson(text, file);
  if (!isObject(data)) throw new TokenizerError(`${file}: vocabulary must be a JSON object of token -> id, got ${describe(data)}`);
  return vocabFromObject(data, file);
}

export function vocabFromObject(data: Record<string, unknown> | Map<string, unknown>, file: string): Map<string, number> {
  const vocab = new Map<string, number>();
  const entries: Iterable<[string, unknown]> = data instanceof Map ? data.entries() : Object.entries(data);
  for (const [token, id] of entries) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id > 0x7fffffff) {
      throw new TokenizerError(`${file}: id of token ${JSON.stringify(token)} must be an integer in [0, 2^31), got ${describe(id)}`);
    }
    if (token === '') throw new TokenizerError(`${file}: empty token in vocabulary`);
    vocab.set(token, id);
  }
  if (vocab.size === 0) throw new TokenizerError(`${file}: vocabulary is empty`);
  return vocab;
}

/**
 * merges.txt as HF reads it: strip the text, split on "\n", skip line 0 (the `#version` header)
 * and keep at most MAX_MERGES lines; each must hold exactly two symbols.
 */
export function parseMerges(text: string, file: string): Array<[string, string]> {
  const stripped = pyStrip(text);
  if (stripped === '') throw new TokenizerError(`${file}: merges file is empty`);
  const lines = stripped.split('\n');
  if (!lines[0]!.startsWith('#')) {
    // HF skips line 0 whatever it holds; a file without the header would silently lose a merge.
    throw new TokenizerError(`${file}: line 1 must be the '#version' header, got ${JSON.stringify(lines[0]!.slice(0, 40))}`);
  }
  const body = lines.slice(1, 1 + MAX_MERGES);
  return body.map((line, i) => mergeFromLine(line, `${file}: line ${i + 2}`));
}

const OTHER_SPACE = new RegExp(`[${PY_SPACE.replace(' ', '')}]`, 'u');

export function mergeFromLine(line: string, where: string): [string, string] {
  // Fast path for the usual "a b" line; anything else goes through Python's str.split() rules.
  const sp = line.indexOf(' ');
  if (sp > 0 && sp < line.length - 1 && line.indexOf(' ', sp + 1) < 0 && !OTHER_SPACE.test(line)) {
    return [line.slice(0, sp), line.slice(sp + 1)];
  }
  const parts = pySplit(line);
  if (parts.length !== 2) {
    throw new TokenizerError(`${where}: a merge must be two symbols separated by a space, got ${JSON.stringify(line.slice(0, 60))}`);
  }
  return [parts[0]!, parts[1]!];
}

/** A special-token entry: a string, an AddedToken object `{content: ...}`, or null (unset). */
function tokenContent(v: unknown, key: string, file: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  throw new TokenizerError(`${file}: ${key} must be a string or an object with a string "content", got ${describe(v)}`);
}

function applyConfig(spec: Partial<TokenizerSpec>, data: unknown, file: string): void {
  if (!isObject(data)) throw new TokenizerError(`${file}: must be a JSON object, got ${describe(data)}`);
  const keys: Array<[string, 'bosToken' | 'eosToken' | 'unkToken' | 'padToken']> = [
    ['bos_token', 'bosToken'],
    ['eos_token', 'eosToken'],
    ['unk_token', 'unkToken'],
    ['pad_token', 'padToken'],
  ];
  for (const [key, field] of keys) {
    if (key in data) {
      const c = tokenContent(data[key], key, file);
      if (c !== undefined) spec[field] = c;
    }
  }
  if ('additional_special_tokens' in data && data.additional_special_tokens !== null) {
    const list = data.additional_special_tokens;
    if (!Array.isArray(list)) throw new TokenizerError(`${file}: additional_special_tokens must be an array, got ${describe(list)}`);
    spec.additionalSpecialTokens = list.map((t, i) => tokenContent(t, `additional_special_tokens[${i}]`, file) ?? '').filter((t) => t !== '');
  }
  if ('model_max_length' in data && data.model_max_length !== null) {
    spec.modelMaxLength = checkModelMaxLength(data.model_max_length, file);
  }
  if ('clean_up_tokenization_spaces' in data && typeof data.clean_up_tokenization_spaces === 'boolean') {
    spec.cleanUpTokenizationSpaces = data.clean_up_tokenization_spaces;
  }
  if ('added_tokens_decoder' in data && data.added_tokens_decoder !== null) {
    const dec = data.added_tokens_decoder;
    if (!isObject(dec)) throw new TokenizerError(`${file}: added_tokens_decoder must be an object of id -> token, got ${describe(dec)}`);
    const added = (spec.addedTokens ??= new Map());
    for (const [idText, tok] of Object.entries(dec)) {
      const id = Number(idText);
      if (!/^\d+$/.test(idText) || !Number.isSafeInteger(id)) throw new TokenizerError(`${file}: added_tokens_decoder key ${JSON.stringify(idText)} is not an id`);
      const content = tokenContent(tok, `added_tokens_decoder["${idText}"]`, file);
      if (content === undefined || content === '') throw new TokenizerError(`${file}: added_tokens_decoder["${idText}"] has no content`);
      const special = isObject(tok) && tok.special === true;
      added.set(content, { id, special });
    }
  }
}

export function checkModelMaxLength(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 2 || v > MAX_MODEL_MAX_LENGTH) {
    throw new TokenizerError(`${where}: model_max_length must be an integer from 2 to ${MAX_MODEL_MAX_LENGTH}, got ${describe(v)}`);
  }
  return v;
}

function applyAddedTokensJson(spec: Partial<TokenizerSpec>, data: unknown, file: string): void {
  if (!isObject(data)) throw new TokenizerError(`${file}: must be a JSON object of token -> id, got ${describe(data)}`);
  const added = (spec.addedTokens ??= new Map());
  for (const [content, id] of vocabFromObject(data, file)) if (!added.has(content)) added.set(content, { id, special: false });
}

export const FOLDER_FILES = {
  vocab: 'vocab.json',
  merges: 'merges.txt',
  config: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  addedTokens: 'added_tokens.json',
} as const;

type FileKey = keyof typeof FOLDER_FILES;
const REQUIRED: ReadonlySet<FileKey> = new Set<FileKey>(['vocab', 'merges']);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(buf: Uint8Array, file: string): string {
  try {
    return utf8.decode(buf);
  } catch {
    throw new TokenizerError(`${file}: not valid UTF-8`);
  }
}

function readError(e: unknown, file: string, required: boolean): Error | undefined {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return required ? new FileNotFoundError(file, 'tokenizer file') : undefined;
  return new TokenizerError(`${file}: cannot read: ${(e as Error).message}`);
}

function checkFolder(dir: string, stat: fs.Stats | undefined): void {
  if (!stat) throw new FileNotFoundError(dir, 'tokenizer folder');
  if (!stat.isDirectory()) throw new TokenizerError(`${dir}: not a folder (expected a tokenizer folder holding vocab.json and merges.txt)`);
}

type Contents = Partial<Record<FileKey, string>>;

export function readFolderSync(dir: string): Contents {
  checkFolder(dir, fs.statSync(dir, { throwIfNoEntry: false }));
  const out: Contents = {};
  for (const key of Object.keys(FOLDER_FILES) as FileKey[]) {
    const file = path.join(dir, FOLDER_FILES[key]);
    try {
      out[key] = decodeUtf8(fs.readFileSync(file), file);
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      const err = readError(e, file, REQUIRED.has(key));
      if (err) throw err;
    }
  }
  return out;
}

export async function readFolder(dir: string): Promise<Contents> {
  let stat: fs.Stats | undefined;
  try {
    stat = await fs.promises.stat(dir);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new TokenizerError(`${dir}: cannot read: ${(e as Error).message}`);
  }
  checkFolder(dir, stat);
  const out: Contents = {};
  for (const key of Object.keys(FOLDER_FILES) as FileKey[]) {
    const file = path.join(dir, FOLDER_FILES[key]);
    try {
      out[key] = decodeUtf8(await fs.promises.readFile(file), file);
    } catch (e) {
      if (e instanceof TokenizerError) throw e;
      const err = readError(e, file, REQUIRED.has(key));
      if (err) throw err;
    }
  }
  return out;
}

/**
 * Builds the spec from a folder's file contents. Precedence, as in transformers' from_pretrained:
 * special_tokens_map.json over tokenizer_config.json over CLIPTokenizer's defaults.
 */
export function specFromContents(dir: string, c: Contents): TokenizerSpec {
  const file = (k: FileKey) => path.join(dir, FOLDER_FILES[k]);
  const spec: Partial<TokenizerSpec> = {};
  spec.vocab = parseVocab(c.vocab!, file('vocab'));
  spec.merges = parseMerges(c.merges!, file('merges'));
  if (c.config !== undefined) applyConfig(spec, parseJson(c.config, file('config')), file('config'));
  if (c.specialTokensMap !== undefined) applyConfig(spec, parseJson(c.specialTokensMap, file('specialTokensMap')), file('specialTokensMap'));
  if (c.addedTokens !== undefined) applyAddedTokensJson(spec, parseJson(c.addedTokens, file('addedTokens')), file('addedTokens'));
  return spec as TokenizerSpec;
}
