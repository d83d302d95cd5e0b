// GPT-2 / CLIP byte-level alphabet: every byte 0..255 maps to one printable code point, so that a
// BPE symbol never contains whitespace or a control character (`bytes_to_unicode` in the references).

function buildTables(): { encoder: string[]; decoder: Map<string, number> } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b); // '!' .. '~'
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b); // '¡' .. '¬'
  for (let b = 0xae; b <= 0xff; b++) bs.push(b); // '®' .. 'ÿ'
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const encoder = new Array<string>(256);
  const decoder = new Map<string, number>();
  for (let i = 0; i < 256; i++) {
    const ch = String.fromCodePoint(cs[i]!);
    encoder[bs[i]!] = ch;
    decoder.set(ch, bs[i]!);
  }
  return { encoder, decoder };
}

const tables = buildTables();

/** byte -> byte-level character, in `bytes_to_unicode` order semantics (index = byte value). */
export const BYTE_ENCODER: readonly string[] = tables.encoder;
/** byte-level character -> byte. */
export const BYTE_DECODER: ReadonlyMap<string, number> = tables.decoder;

/**
 * The 256 byte-level characters in vocabulary order (`!`…`~`, `¡`…`¬`, `®`…`ÿ`, then U+0100…U+0143
 * for the remaining bytes): ids 0..255 of a CLIP vocabulary.
 */
export function byteLevelAlphabet(): string[] {
  return [...tables.decoder.keys()];
}

const utf8 = new TextEncoder();

/** The UTF-8 bytes of `text`, each mapped to its byte-level character. */
export function toByteLevel(text: string): string {
  const bytes = utf8.encode(text);
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += BYTE_ENCODER[bytes[i]!]!;
  return out;
}

/**
 * Byte-level characters back to bytes. Characters outside the alphabet (only possible for added
 * tokens or a foreign vocabulary) are passed through as their own UTF-8 bytes.
 */
export function fromByteLevel(symbols: string): Uint8Array {
  const out: number[] = [];
  for (const ch of symbols) {
    const b = BYTE_DECODER.get(ch);
    if (b !== undefined) out.push(b);
    else for (const x of utf8.encode(ch)) out.push(x);
  }
  return Uint8Array.from(out);
}
