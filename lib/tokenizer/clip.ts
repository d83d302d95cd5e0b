// The CLIP BPE tokenizer as the diffusers pipelines run it: Hugging Face's slow CLIPTokenizer when
// ftfy is not installed (BasicTokenizer cleaning). See docs/TOKENIZER.md for every rule and for the
// differences from the OpenAI reference, ftfy and the HF fast tokenizer.
import { TokenizerError } from '../errors';
import { BytePairEncoder } from './bpe';
import { StringTable } from './string_table';
import { fromByteLevel, toByteLevel } from './bytes';
import { WHITE_SPACE, hfCleanText } from './clean';
import {
  DEFAULT_BOS_TOKEN,
  DEFAULT_EOS_TOKEN,
  DEFAULT_MODEL_MAX_LENGTH,
  DEFAULT_PAD_TOKEN,
  DEFAULT_UNK_TOKEN,
  type TokenizerSpec,
  checkModelMaxLength,
  mergeFromLine,
  pyStrip,
  readFolder,
  readFolderSync,
  specFromContents,
  vocabFromObject,
} from './files';

export interface EncodeResult {
  /** modelMaxLength ids: BOS, at most modelMaxLength - 2 prompt tokens, EOS, then padding. */
  ids: number[];
  /** 1 for BOS, the prompt tokens and EOS; 0 for padding. */
  attentionMask: number[];
  /** Position of the first EOS id in `ids`: the token the pooled text-encoder output is taken from. */
  eosIndex: number;
  /** Whether prompt tokens were cut to fit. */
  truncated: boolean;
  /** Prompt tokens before truncation (without BOS / EOS). */
  numTokens: number;
}

/** Overrides for fromPretrained (as keyword arguments to transformers' from_pretrained). */
export interface TokenizerOverrides {
  padToken?: string;
  modelMaxLength?: number;
}

export interface TokenizerFromFilesOptions {
  /** token -> id (the content of vocab.json). */
  vocab: Record<string, number> | Map<string, number>;
  /**
   * Merges in priority order: "a b" lines or [a, b] pairs. A leading `#version` line and blank lines
   * are skipped; unlike reading merges.txt, no cap on the count is applied.
   */
  merges: ReadonlyArray<string | readonly [string, string]>;
  padToken?: string;
  bosToken?: string;
  eosToken?: string;
  unkToken?: string;
  additionalSpecialTokens?: string[];
  /** Extra added tokens with fixed ids (split out before cleaning, like special tokens). */
  addedTokens?: Record<string, number>;
  modelMaxLength?: number;
  cleanUpTokenizationSpaces?: boolean;
}

export interface DecodeOptions {
  /** Drop BOS, EOS, UNK, PAD and additional special tokens (default true). Note: with pad "!" that drops every "!". */
  skipSpecialTokens?: boolean;
  /** transformers' clean_up_tokenization (" ," -> ",", " 's" -> "'s", ...). Default: the folder's config, else false. */
  cleanUpTokenizationSpaces?: boolean;
}

/** Python `regex`'s IGNORECASE for a literal: simple case folding (only `s` has a third form, U+017F). */
function caseless(literal: string): string {
  let out = '';
  for (const ch of literal) {
    if (ch === 's') out += '[sS\\u017f]';
    else if (/[a-z]/.test(ch)) out += `[${ch}${ch.toUpperCase()}]`;
    else out += ch.replace(/[|\\^$.*+?()[\]{}]/g, '\\$&');
  }
  return out;
}

/**
 * The CLIP pre-tokenizer pattern
 * `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
 * (case-insensitive, Python `regex` module) in JS terms: `\s` is Unicode White_Space (JS `\s`
 * differs at U+0085 and U+FEFF); case-insensitivity is spelled out per literal because JS `/iu`
 * would also let `\p{L}` match U+0345, which `regex` matches with no branch (it is dropped).
 */
export const CLIP_PATTERN = new RegExp(
  [
    caseless('<|startoftext|>'),
    caseless('<|endoftext|>'),
    ...['s', 't', 're', 've', 'm', 'll', 'd'].map((c) => `'${caseless(c)}`),
    '\\p{L}+',
    '\\p{N}',
    `[^${WHITE_SPACE}\\p{L}\\p{N}\\u0345]+`,
  ].join('|'),
  'gu',
);

const escapeRegExp = (s: string): string => s.replace(/[|\\{}()[\]^$+*?.]/g, '\\$&');
const utf8Replace = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

export class CLIPTokenizer {
  readonly bosToken: string;
  readonly eosToken: string;
  readonly unkToken: string;
  readonly padToken: string;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly unkTokenId: number;
  readonly padTokenId: number;
  readonly modelMaxLength: number;

  private readonly encoder: StringTable;
  /** id -> entry of `encoder` (-1: none; a Map where ids are sparse); a later duplicate id wins, as {v: k} */
  private readonly entryOfId: Int32Array | Map<number, number>;
  /** id -> token where an added token took the id */
  private readonly decoderAdded = new Map<number, string>();
  private readonly bpe: BytePairEncoder;
  /** Every added token (special or not) -> id; these are split out before any cleaning. */
  private readonly added = new Map<string, number>();
  private readonly specialIds = new Set<number>();
  /** Non-special added tokens: decoded as separate pieces (transformers' "legacy added tokens"). */
  private readonly plainAdded = new Set<string>();
  private readonly addedPattern: RegExp | undefined;
  private readonly cleanUpSpaces: boolean;

  private constructor(spec: TokenizerSpec) {
    this.encoder = new StringTable(spec.vocab);
    let maxId = -1;
    for (const id of spec.vocab.values()) maxId = Math.max(maxId, id);
    const dense = maxId < 2 * this.encoder.size + 4096;
    const byId = dense ? new Int32Array(maxId + 1).fill(-1) : new Map<number, number>();
    for (let e = 0; e < this.encoder.size; e++) {
      if (byId instanceof Map) byId.set(this.encoder.valueAt(e), e);
      else byId[this.encoder.valueAt(e)] = e;
    }
    this.entryOfId = byId;
    this.bpe = new BytePairEncoder(spec.merges);
    this.modelMaxLength = spec.modelMaxLength ?? DEFAULT_MODEL_MAX_LENGTH;
    this.cleanUpSpaces = spec.cleanUpTokenizationSpaces ?? false;

    let nextId = 0;
    for (const id of spec.vocab.values()) nextId = Math.max(nextId, id + 1);
    for (const { id } of spec.addedTokens?.values() ?? []) nextId = Math.max(nextId, id + 1);
    const addToken = (content: string, fixedId: number | undefined, special: boolean): number => {
      if (content === '') throw new TokenizerError('added / special tokens must not be empty');
      let id = this.added.get(content) ?? fixedId ?? this.encoder.get(content);
      if (id === undefined) id = nextId++;
      this.added.set(content, id);
      if (this.tokenOf(id) === undefined || fixedId !== undefined) this.decoderAdded.set(id, content);
      if (special) {
        this.specialIds.add(id);
        this.plainAdded.delete(content);
      } else if (!this.specialIds.has(id)) {
        this.plainAdded.add(content);
      }
      return id;
    };
    for (const [content, { id, special }] of spec.addedTokens ?? []) addToken(content, id, special);
    this.bosToken = spec.bosToken ?? DEFAULT_BOS_TOKEN;
    this.eosToken = spec.eosToken ?? DEFAULT_EOS_TOKEN;
    this.unkToken = spec.unkToken ?? DEFAULT_UNK_TOKEN;
    this.padToken = spec.padToken ?? DEFAULT_PAD_TOKEN;
    // transformers adds the special tokens in this order: bos, eos, unk, pad, additional.
    this.bosTokenId = addToken(this.bosToken, undefined, true);
    this.eosTokenId = addToken(this.eosToken, undefined, true);
    this.unkTokenId = addToken(this.unkToken, undefined, true);
    this.padTokenId = addToken(this.padToken, undefined, true);
    for (const t of spec.additionalSpecialTokens ?? []) addToken(t, undefined, true);

    // Leftmost match first, longest among those starting at the same place (transformers' Trie).
    const contents = [...this.added.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1));
    this.addedPattern = contents.length ? new RegExp(contents.map(escapeRegExp).join('|'), 'gu') : undefined;
  }

  /**
   * Loads a tokenizer folder: vocab.json and merges.txt (required), tokenizer_config.json,
   * special_tokens_map.json and added_tokens.json (optional). Missing optional values default to
   * CLIPTokenizer's: bos `<|startoftext|>`, eos / unk / pad `<|endoftext|>`, model_max_length 77.
   */
  static async fromPretrained(dir: string, overrides: TokenizerOverrides = {}): Promise<CLIPTokenizer> {
    checkDir(dir);
    const contents = await readFolder(dir);
    return CLIPTokenizer.fromSpec(applyOverrides(specFromContents(dir, contents), overrides));
  }

  /** fromPretrained, synchronously. */
  static fromPretrainedSync(dir: string, overrides: TokenizerOverrides = {}): CLIPTokenizer {
    checkDir(dir);
    return CLIPTokenizer.fromSpec(applyOverrides(specFromContents(dir, readFolderSync(dir)), overrides));
  }

  /** Builds a tokenizer from in-memory data (vocab object and merge lines). */
  static fromFiles(opts: TokenizerFromFilesOptions): CLIPTokenizer {
    if (typeof opts !== 'object' || opts === null) throw new TokenizerError('fromFiles needs an options object');
    const where = 'fromFiles';
    if (typeof opts.vocab !== 'object' || opts.vocab === null || Array.isArray(opts.vocab)) {
      throw new TokenizerError(`${where}: vocab must be an object of token -> id, got ${typeName(opts.vocab)}`);
    }
    if (!Array.isArray(opts.merges)) throw new TokenizerError(`${where}: merges must be an array, got ${typeName(opts.merges)}`);
    const vocab = vocabFromObject(opts.vocab, `${where}: vocab`);
    const skipHeader = opts.merges.length > 0 && typeof opts.merges[0] === 'string' && opts.merges[0].startsWith('#version');
    const merges: Array<[string, string]> = [];
    opts.merges.forEach((m, i) => {
      if (i === 0 && skipHeader) return;
      if (typeof m === 'string' && pyStrip(m) === '') return; // blank lines, e.g. a trailing newline
      merges.push(toMerge(m, i));
    });
    function toMerge(m: unknown, i: number): [string, string] {
      if (typeof m === 'string') return mergeFromLine(m, `${where}: merges[${i}]`);
      if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
        return mergeFromLine(`${m[0]} ${m[1]}`, `${where}: merges[${i}]`);
      }
      throw new TokenizerError(`${where}: merges[${i}] must be a string "a b" or a pair of strings`);
    }
    const spec: TokenizerSpec = { vocab, merges };
    for (const key of ['padToken', 'bosToken', 'eosToken', 'unkToken'] as const) {
      const v = opts[key];
      if (v !== undefined) {
        if (typeof v !== 'string' || v === '') throw new TokenizerError(`${where}: ${key} must be a non-empty string`);
        spec[key] = v;
      }
    }
    if (opts.additionalSpecialTokens !== undefined) {
      if (!Array.isArray(opts.additionalSpecialTokens) || !opts.additionalSpecialTokens.every((t) => typeof t === 'string' && t !== '')) {
        throw new TokenizerError(`${where}: additionalSpecialTokens must be an array of non-empty strings`);
      }
      spec.additionalSpecialTokens = opts.additionalSpecialTokens.slice();
    }
    if (opts.addedTokens !== undefined) {
      const m = vocabFromObject(opts.addedTokens, `${where}: addedTokens`);
      spec.addedTokens = new Map([...m].map(([t, id]) => [t, { id, special: false }]));
    }
    if (opts.modelMaxLength !== undefined) spec.modelMaxLength = checkModelMaxLength(opts.modelMaxLength, where);
    if (opts.cleanUpTokenizationSpaces !== undefined) spec.cleanUpTokenizationSpaces = !!opts.cleanUpTokenizationSpaces;
    return CLIPTokenizer.fromSpec(spec);
  }

  private static fromSpec(spec: TokenizerSpec): CLIPTokenizer {
    return new CLIPTokenizer(spec);
  }

  private tokenOf(id: number): string | undefined {
    const added = this.decoderAdded.get(id);
    if (added !== undefined) return added;
    const byId = this.entryOfId;
    const e = byId instanceof Map ? byId.get(id) : Number.isInteger(id) && id >= 0 && id < byId.length ? byId[id] : undefined;
    return e !== undefined && e >= 0 ? this.encoder.keyAt(e) : undefined;
  }

  /** Entries in the vocabulary plus added tokens that are not in it. */
  get vocabSize(): number {
    let n = this.encoder.size;
    for (const t of this.added.keys()) if (!this.encoder.has(t)) n++;
    return n;
  }

  /** The id of a token (vocabulary or added), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.added.get(token) ?? this.encoder.get(token);
  }

  /** The token of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.tokenOf(id);
  }

  /** BPE tokens of the prompt (added tokens as their content), without BOS / EOS. */
  tokenize(text: string): string[] {
    checkText(text);
    const out: string[] = [];
    let last = 0;
    if (this.addedPattern) {
      for (const m of text.matchAll(this.addedPattern)) {
        if (m.index! > last) this.tokenizeChunk(text.slice(last, m.index), out);
        out.push(m[0]);
        last = m.index! + m[0].length;
      }
    }
    if (last < text.length) this.tokenizeChunk(text.slice(last), out);
    return out;
  }

  /** Text between added tokens: BasicTokenizer cleaning, the CLIP pattern, bytes, BPE. */
  private tokenizeChunk(chunk: string, out: string[]): void {
    const text = hfCleanText(chunk);
    for (const m of text.matchAll(CLIP_PATTERN)) {
      for (const sym of this.bpe.encode(toByteLevel(m[0]))) out.push(sym);
    }
  }

  /** Token ids of the prompt, untruncated, without BOS / EOS. Unknown tokens map to the unk id. */
  tokenIds(text: string): number[] {
    return this.tokenize(text).map((t) => this.added.get(t) ?? this.encoder.get(t) ?? this.unkTokenId);
  }

  /** modelMaxLength ids: BOS + the first modelMaxLength - 2 tokens + EOS, padded with the pad id. */
  encode(text: string): number[] {
    return this.encodeWithInfo(text).ids;
  }

  encodeWithInfo(text: string): EncodeResult {
    const tokens = this.tokenIds(text);
    const max = this.modelMaxLength;
    const body = tokens.length > max - 2 ? tokens.slice(0, max - 2) : tokens;
    const ids = new Array<number>(max);
    const attentionMask = new Array<number>(max);
    ids[0] = this.bosTokenId;
    for (let i = 0; i < body.length; i++) ids[i + 1] = body[i]!;
    const used = body.length + 2;
    ids[used - 1] = this.eosTokenId;
    for (let i = 0; i < max; i++) {
      if (i >= used) ids[i] = this.padTokenId;
      attentionMask[i] = i < used ? 1 : 0;
    }
    return { ids, attentionMask, eosIndex: ids.indexOf(this.eosTokenId), truncated: tokens.length > body.length, numTokens: tokens.length };
  }

  encodeBatch(texts: string[]): number[][] {
    if (!Array.isArray(texts)) throw new TokenizerError(`prompts must be an array of strings, got ${typeName(texts)}`);
    texts.forEach((t, i) => checkText(t, `prompt ${i}`));
    return texts.map((t) => this.encode(t));
  }

  encodeBatchWithInfo(texts: string[]): EncodeResult[] {
    if (!Array.isArray(texts)) throw new TokenizerError(`prompts must be an array of strings, got ${typeName(texts)}`);
    texts.forEach((t, i) => checkText(t, `prompt ${i}`));
    return texts.map((t) => this.encodeWithInfo(t));
  }

  /**
   * Ids back to text, as transformers' slow decode: tokens are joined, byte-level symbols turned back
   * into UTF-8 (invalid sequences become U+FFFD), `</w>` becomes a space, the result is stripped.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (typeof ids !== 'object' || ids === null || typeof ids.length !== 'number') {
      throw new TokenizerError(`ids must be an array of integers, got ${typeName(ids)}`);
    }
    const skip = options.skipSpecialTokens ?? true;
    const pieces: string[] = [];
    let current = '';
    const flush = () => {
      if (current === '') return;
      const text = pyStrip(utf8Replace.decode(fromByteLevel(current)).replace(/<\/w>/g, ' '));
      if (text !== '') pieces.push(text);
      current = '';
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (typeof id !== 'number' || !Number.isInteger(id)) throw new TokenizerError(`ids[${i}] is not an integer: ${String(id)}`);
      const token = this.tokenOf(id);
      if (token === undefined) throw new TokenizerError(`ids[${i}] = ${id} is not in the vocabulary`);
      if (skip && this.specialIds.has(id)) continue;
      if (this.plainAdded.has(token)) {
        flush();
        pieces.push(token);
      } else {
        current += token;
      }
    }
    flush();
    const text = pieces.join(' ');
    return (options.cleanUpTokenizationSpaces ?? this.cleanUpSpaces) ? cleanUpTokenization(text) : text;
  }

  decodeBatch(batch: ArrayLike<number>[], options: DecodeOptions = {}): string[] {
    if (!Array.isArray(batch)) throw new TokenizerError(`batch must be an array of id arrays, got ${typeName(batch)}`);
    return batch.map((ids) => this.decode(ids, options));
  }
}

/** transformers' `clean_up_tokenization`. */
export function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function checkText(text: unknown, what = 'prompt'): asserts text is string {
  if (typeof text !== 'string') throw new TokenizerError(`${what} must be a string, got ${typeName(text)}`);
}

function checkDir(dir: unknown): asserts dir is string {
  if (typeof dir !== 'string' || dir === '') throw new TokenizerError(`tokenizer folder must be a non-empty string path, got ${typeName(dir)}`);
}

function applyOverrides(spec: TokenizerSpec, o: TokenizerOverrides): TokenizerSpec {
  if (typeof o !== 'object' || o === null) throw new TokenizerError('overrides must be an object');
  if (o.padToken !== undefined) {
    if (typeof o.padToken !== 'string' || o.padToken === '') throw new TokenizerError('padToken must be a non-empty string');
    spec.padToken = o.padToken;
  }
  if (o.modelMaxLength !== undefined) spec.modelMaxLength = checkModelMaxLength(o.modelMaxLength, 'modelMaxLength');
  return spec;
}
