// Byte-pair encoding of one pre-tokenized piece, exactly as CLIP's `bpe()`: the last symbol carries
// `</w>`, the lowest-ranked adjacent pair is merged everywhere (left to right, non-overlapping) until
// no ranked pair is left.

import { StringTable } from './string_table';

export const END_OF_WORD = '</w>';

/** Pieces that the references' BPE cache returns unchanged (no `</w>`). */
const PRESET: ReadonlyMap<string, readonly string[]> = new Map([
  ['<|startoftext|>', ['<|startoftext|>']],
  ['<|endoftext|>', ['<|endoftext|>']],
]);

/** Key of a merge pair. Symbols never contain a space (merge lines are split on whitespace). */
const pairKey = (a: string, b: string): string => `${a} ${b}`;

export class BytePairEncoder {
  private readonly ranks: StringTable;
  private readonly cache = new Map<string, readonly string[]>();

  /**
   * @param merges merge pairs in priority order (a later duplicate overrides an earlier one, as the
   *   references' `dict(zip(merges, range(n)))` does)
   * @param cacheSize entries kept before the cache is cleared (the references' cache is unbounded)
   */
  constructor(
    merges: ReadonlyArray<readonly [string, string]>,
    private readonly cacheSize = 65536,
  ) {
    this.ranks = new StringTable(merges.map(([a, b], rank) => [pairKey(a, b), rank] as const));
  }

  get numMerges(): number {
    return this.ranks.size;
  }

  /** The BPE symbols of one byte-level piece (non-empty). */
  encode(piece: string): readonly string[] {
    const preset = PRESET.get(piece);
    if (preset) return preset;
    const cached = this.cache.get(piece);
    if (cached) return cached;
    const result = this.merge(piece);
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(piece, result);
    return result;
  }

  private merge(piece: string): string[] {
    let word = Array.from(piece);
    word[word.length - 1] += END_OF_WORD;
    if (word.length < 2) return word;
    const ranks = this.ranks;
    for (;;) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i + 1 < word.length; i++) {
        const r = ranks.get(pairKey(word[i]!, word[i + 1]!));
        if (r !== undefined && r < best) {
          best = r;
          first = word[i]!;
          second = word[i + 1]!;
        }
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i + 1 < word.length && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]!);
          i += 1;
        }
      }
      word = next;
      if (word.length === 1) break;
    }
    return word;
  }
}
