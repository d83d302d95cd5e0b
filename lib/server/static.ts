// The page: a fixed set of files from web/ (shipped with the package, no build step), read once
// and served from memory with a strict Content-Security-Policy.
import * as fs from 'fs';
import * as path from 'path';
import { FileNotFoundError } from '../errors';

/** web/ beside dist/ (and beside lib/ when run from the sources). */
export const WEB_DIR = path.resolve(__dirname, '..', '..', 'web');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

export interface StaticFile {
  body: Buffer;
  headers: Record<string, string>;
}

const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-cache',
};

/** Reads the page's files; a missing file is an error at start-up, not a 404 later. */
export function loadStaticFiles(dir = WEB_DIR): Map<string, StaticFile> {
  const out = new Map<string, StaticFile>();
  for (const [route, { file, type }] of Object.entries(FILES)) {
    const p = path.join(dir, file);
    if (!fs.existsSync(p)) throw new FileNotFoundError(p, 'page file');
    out.set(route, { body: fs.readFileSync(p), headers: { 'Content-Type': type, ...SECURITY_HEADERS } });
  }
  return out;
}
