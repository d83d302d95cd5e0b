// PNG at the chunk level: a structural check before decoding (so a truncated or corrupt file is
// named as such, not by the decoder's internals), and reading / writing text chunks (tEXt, iTXt)
// such as the `parameters` chunk Stable Diffusion web UIs write.
import * as zlib from 'zlib';
import { ArgumentError } from '../errors';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export interface PngChunk {
  type: string;
  /** offset of the chunk (its length field) in the file */
  offset: number;
  data: Buffer;
}

/**
 * The chunks of a PNG, checked: signature, every chunk inside the data with a matching CRC, IHDR
 * first, IEND last. Throws an ArgumentError saying what is wrong (`what` names the source).
 */
export function pngChunks(bytes: Uint8Array, what = 'the image'): PngChunk[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 8 || !b.subarray(0, 8).equals(SIGNATURE)) throw new ArgumentError(`${what} is not a PNG (no PNG signature)`);
  const chunks: PngChunk[] = [];
  let p = 8;
  while (p < b.length) {
    if (p + 8 > b.length) throw new ArgumentError(`${what} is a truncated PNG: it ends inside a chunk header at byte ${p} of ${b.length}`);
    const len = b.readUInt32BE(p);
    const type = b.toString('latin1', p + 4, p + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new ArgumentError(`${what} is a corrupt PNG: no chunk type at byte ${p}`);
    if (len > 0x7fffffff || p + 12 + len > b.length) throw new ArgumentError(`${what} is a truncated PNG: chunk ${type} at byte ${p} needs ${len + 12} bytes, ${b.length - p} are left`);
    const data = b.subarray(p + 8, p + 8 + len);
    const crc = b.readUInt32BE(p + 8 + len);
    if (crc32(data, crc32(b.subarray(p + 4, p + 8))) !== crc) throw new ArgumentError(`${what} is a corrupt PNG: chunk ${type} at byte ${p} fails its checksum`);
    chunks.push({ type, offset: p, data });
    p += 12 + len;
    if (type === 'IEND') break;
  }
  if (chunks[0]?.type !== 'IHDR') throw new ArgumentError(`${what} is a corrupt PNG: the first chunk is not IHDR`);
  if (chunks[chunks.length - 1].type !== 'IEND') throw new ArgumentError(`${what} is a truncated PNG: it ends without an IEND chunk`);
  if (!chunks.some((c) => c.type === 'IDAT')) throw new ArgumentError(`${what} is a corrupt PNG: no image data (IDAT)`);
  return chunks;
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4, 8))));
  return Buffer.concat([head, data, crc]);
}

/**
 * A PNG with text chunks added before IEND: tEXt where key and text are Latin-1, else iTXt
 * (UTF-8, uncompressed), the way PIL's PngInfo and the common web UIs write them.
 */
export function withTextChunks(png: Uint8Array, texts: Record<string, string>): Buffer {
  const chunks = pngChunks(png, 'the PNG');
  const end = chunks[chunks.length - 1].offset;
  const b = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const extra: Buffer[] = [];
  for (const [key, text] of Object.entries(texts)) {
    if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(key) || key.startsWith(' ') || key.endsWith(' ')) throw new ArgumentError(`PNG text key '${key}' must be 1-79 Latin-1 characters`);
    // eslint-disable-next-line no-control-regex
    const latin1 = /^[\x00-\xff]*$/.test(text) && !text.includes('\0');
    extra.push(
      latin1
        ? chunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(text, 'latin1')]))
        : chunk('iTXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text.replace(/\0/g, ''), 'utf8')])),
    );
  }
  return Buffer.concat([b.subarray(0, end), ...extra, b.subarray(end)]);
}

/** The text chunks of a PNG (tEXt, zTXt, iTXt), key -> text. */
export function readTextChunks(png: Uint8Array, what = 'the image'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of pngChunks(png, what)) {
    const z = c.data.indexOf(0);
    if (z < 1) continue;
    const key = c.data.toString('latin1', 0, z);
    try {
      if (c.type === 'tEXt') out[key] = c.data.toString('latin1', z + 1);
      else if (c.type === 'zTXt') out[key] = zlib.inflateSync(c.data.subarray(z + 2)).toString('latin1');
      else if (c.type === 'iTXt') {
        const compressed = c.data[z + 1] === 1;
        const lang = c.data.indexOf(0, z + 3); // end of the language tag
        const translated = lang < 0 ? -1 : c.data.indexOf(0, lang + 1); // end of the translated keyword
        if (translated < 0) continue;
        const body = c.data.subarray(translated + 1);
        out[key] = (compressed ? zlib.inflateSync(body) : body).toString('utf8');
      }
    } catch {
      // an undecodable text chunk is skipped: the image itself is intact
    }
  }
  return out;
}
