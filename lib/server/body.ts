// Request bodies: JSON only (Content-Type: application/json, which also keeps cross-site forms
// out), read up to a byte limit (413 beyond it), parsed strictly (400 with the parser's message).
import type { IncomingMessage } from 'http';
import { AbortError } from '../errors';
import { badJson, tooLarge, unsupportedMediaType } from './errors';

export function isJsonContentType(header: string | undefined): boolean {
  if (!header) return false;
  const type = header.split(';')[0].trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

/** Reads and parses a JSON body of at most `limit` bytes. */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) throw unsupportedMediaType(req.headers['content-type']);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume(); // discard the rest; the 413 answer closes the connection
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('close', () => reject(new AbortError('the client closed the connection')));
  });
  const text = body.toString('utf8');
  if (text.trim() === '') throw badJson('the request body is empty; send a JSON object');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badJson(`the request body is not valid JSON: ${(e as Error).message}`);
  }
}
